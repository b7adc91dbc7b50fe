//! The TSTInfo of an RFC 3161 time-stamp token (§2.4.2), read leniently enough for every
//! TSA in use: BER, accuracy in any unit or absent, ordering, nonce, a `tsa` name,
//! extensions, genTime with fractional seconds, serial numbers of any length.
//!
//! ```text
//! TSTInfo ::= SEQUENCE { version INTEGER, policy TSAPolicyId, messageImprint MessageImprint,
//!     serialNumber INTEGER, genTime GeneralizedTime, accuracy Accuracy OPTIONAL,
//!     ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL, tsa [0] GeneralName OPTIONAL,
//!     extensions [1] IMPLICIT Extensions OPTIONAL }
//! ```

use const_oid::ObjectIdentifier;
use time::OffsetDateTime;

use super::ber::{self, BerError, Fields};
use super::parse::{algorithm, AlgorithmId};

/// The fields of a TSTInfo a verifier uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStampInfo {
    /// The TSA's policy.
    pub policy: ObjectIdentifier,
    /// The hash algorithm of the message imprint.
    pub imprint_algorithm: AlgorithmId,
    /// The hash of the time-stamped data.
    pub imprint: Vec<u8>,
    /// The serial number's content octets (up to 160 bits and more).
    pub serial: Vec<u8>,
    /// The time of the stamp.
    pub gen_time: OffsetDateTime,
    /// The accuracy in microseconds, when given.
    pub accuracy_micros: Option<u64>,
    /// The nonce's content octets, when given.
    pub nonce: Option<Vec<u8>>,
}

/// Parses a TSTInfo (the eContent of a time-stamp token).
pub fn parse(bytes: &[u8]) -> Result<TimeStampInfo, BerError> {
    let tst = ber::read_one(bytes)?.expect(ber::SEQUENCE, "TSTInfo")?;
    let mut fields = Fields::of(&tst)?;
    fields.required(ber::INTEGER, "version")?;
    let policy = ber::oid(&fields.required(ber::OID, "policy")?)?;
    let imprint = fields.required(ber::SEQUENCE, "messageImprint")?;
    let mut imprint_fields = Fields::of(&imprint)?;
    let imprint_algorithm = algorithm(&imprint_fields.any("hashAlgorithm")?)?;
    let hashed = imprint_fields.any("hashedMessage")?;
    if hashed.tag & !0x20 != ber::OCTET_STRING {
        return Err(BerError::Invalid("hashedMessage"));
    }
    let serial = fields
        .required(ber::INTEGER, "serialNumber")?
        .value
        .to_vec();
    let gen_time = fields.any("genTime")?;
    if gen_time.tag & !0x20 != 0x18 {
        return Err(BerError::Invalid("genTime"));
    }
    let gen_time = ber::time(&gen_time)?;
    let accuracy_micros = match fields.optional(ber::SEQUENCE) {
        Some(acc) => Some(accuracy(&acc)?),
        None => None,
    };
    fields.optional(0x01); // ordering
    let nonce = fields.optional(ber::INTEGER).map(|n| n.value.to_vec());
    // tsa [0] and extensions [1] carry nothing the verdict depends on.
    Ok(TimeStampInfo {
        policy,
        imprint_algorithm,
        imprint: hashed.octets()?.into_owned(),
        serial,
        gen_time,
        accuracy_micros,
        nonce,
    })
}

/// `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER OPTIONAL,
/// micros [1] INTEGER OPTIONAL }` in microseconds.
fn accuracy(acc: &ber::Tlv<'_>) -> Result<u64, BerError> {
    let mut micros = 0u64;
    for field in acc.children()? {
        let value = ber::small_uint(&ber::Tlv {
            tag: ber::INTEGER,
            ..field
        })?;
        let scale = match field.tag {
            ber::INTEGER => 1_000_000,
            0x80 => 1_000,
            0x81 => 1,
            _ => return Err(BerError::Invalid("accuracy")),
        };
        micros = micros.saturating_add(value.saturating_mul(scale));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        ber::encode(tag, value)
    }

    fn tst_info(extra: &[u8], time: &str, serial: &[u8]) -> Vec<u8> {
        let sha256 = [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        ];
        let mut body = tlv(0x02, &[1]);
        body.extend(tlv(0x06, &[0x2a, 0x03, 0x04]));
        let mut imprint = tlv(0x30, &sha256);
        imprint.extend(tlv(0x04, &[7; 32]));
        body.extend(tlv(0x30, &imprint));
        body.extend(tlv(0x02, serial));
        body.extend(tlv(0x18, time.as_bytes()));
        body.extend_from_slice(extra);
        tlv(0x30, &body)
    }

    #[test]
    fn tokens_of_other_tsas_parse() {
        // Accuracy in seconds, millis and micros, ordering, nonce, tsa name, extensions.
        let mut extra = tlv(
            0x30,
            &[tlv(0x02, &[1]), tlv(0x80, &[2]), tlv(0x81, &[3])].concat(),
        );
        extra.extend(tlv(0x01, &[0xff]));
        extra.extend(tlv(
            0x02,
            &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09],
        ));
        extra.extend(tlv(0xA0, &tlv(0xA4, &tlv(0x30, &[]))));
        extra.extend(tlv(0xA1, &tlv(0x30, &[])));
        let serial = [
            0x00, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        ];
        let info = parse(&tst_info(&extra, "20250701093000.5Z", &serial)).unwrap();
        assert_eq!(info.accuracy_micros, Some(1_002_003));
        assert_eq!(info.serial.len(), 21);
        assert_eq!(info.gen_time.millisecond(), 500);
        assert_eq!(info.nonce.as_deref().map(<[u8]>::len), Some(9));
        assert_eq!(info.imprint, [7; 32]);
        // Nothing optional at all.
        let bare = parse(&tst_info(&[], "20250701093000Z", &[1])).unwrap();
        assert_eq!(bare.accuracy_micros, None);
        assert!(parse(&tst_info(&[], "2025", &[1])).is_err());
    }
}
