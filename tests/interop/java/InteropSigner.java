// An independent signer for signgate's interop matrix (tests/it/interop_matrix.rs): Apache PDFBox 2
// and BouncyCastle from Debian (libpdfbox2-java, libbcprov-java, libbcpkix-java) and the JDK's
// javax.xml.crypto.dsig. The test compiles it with javac into target/ and runs it once with a job
// file; nothing here is signgate code.
//
// usage: java -cp CLASSPATH InteropSigner JOBS.tsv
// Each line of JOBS.tsv: KIND <TAB> P12 <TAB> IN <TAB> OUT, KIND one of
//   pdf-der      PDF adbe.pkcs7.detached, CMSSignedDataGenerator, CMS encoded as DER
//   pdf-ber      PDF adbe.pkcs7.detached, CMSSignedDataStreamGenerator (indefinite lengths)
//   pdf-cades    PDF ETSI.CAdES.detached, signing-certificate-v2 signed attribute, DER
//   cms-cades    detached CMS (.p7s) over IN, signing-certificate-v2, DER
//   cms-ber      detached CMS (.p7s) over IN, CMSSignedDataStreamGenerator (BER)
//   xml-incl     XML-DSig enveloped, inclusive C14N 1.0, SHA-256, X509Data with the chain
//   xml-excl     XML-DSig enveloped, exclusive C14N, SHA-256, X509Data with the chain
// The PKCS#12 password is "demo"; the signature algorithm follows the key (RSA or ECDSA, SHA-256).
// First line of stdout: the producer versions (PDFBox, BouncyCastle, Java).

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Calendar;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignatureMethod;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.apache.pdfbox.cos.COSName;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.PDSignature;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureInterface;
import org.bouncycastle.asn1.ASN1EncodableVector;
import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.DERSet;
import org.bouncycastle.asn1.cms.Attribute;
import org.bouncycastle.asn1.cms.AttributeTable;
import org.bouncycastle.asn1.ess.ESSCertIDv2;
import org.bouncycastle.asn1.ess.SigningCertificateV2;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.IssuerSerial;
import org.bouncycastle.cert.jcajce.JcaCertStore;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.CMSSignedDataGenerator;
import org.bouncycastle.cms.CMSSignedDataStreamGenerator;
import org.bouncycastle.cms.DefaultSignedAttributeTableGenerator;
import org.bouncycastle.cms.SignerInfoGenerator;
import org.bouncycastle.cms.jcajce.JcaSignerInfoGeneratorBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.w3c.dom.Document;

public final class InteropSigner {
    private InteropSigner() {}

    /** A key and its certificate chain (leaf first) from a PKCS#12 file. */
    private static final class Identity {
        final PrivateKey key;
        final List<X509Certificate> chain = new ArrayList<>();

        Identity(Path p12) throws Exception {
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = Files.newInputStream(p12)) {
                ks.load(in, "demo".toCharArray());
            }
            PrivateKey found = null;
            for (Enumeration<String> e = ks.aliases(); e.hasMoreElements();) {
                String alias = e.nextElement();
                if (ks.isKeyEntry(alias)) {
                    found = (PrivateKey) ks.getKey(alias, "demo".toCharArray());
                    for (Certificate c : ks.getCertificateChain(alias)) {
                        chain.add((X509Certificate) c);
                    }
                    break;
                }
            }
            if (found == null) {
                throw new IllegalArgumentException("no key in " + p12);
            }
            key = found;
        }

        X509Certificate cert() {
            return chain.get(0);
        }

        String jcaAlgorithm() {
            return key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
        }
    }

    /** The SignerInfo generator; with `cades`, a signing-certificate-v2 signed attribute. */
    private static SignerInfoGenerator signerInfo(Identity id, boolean cades) throws Exception {
        ContentSigner signer = new JcaContentSignerBuilder(id.jcaAlgorithm()).build(id.key);
        JcaSignerInfoGeneratorBuilder b =
            new JcaSignerInfoGeneratorBuilder(new JcaDigestCalculatorProviderBuilder().build());
        if (cades) {
            X509Certificate cert = id.cert();
            byte[] hash = MessageDigest.getInstance("SHA-256").digest(cert.getEncoded());
            IssuerSerial issuerSerial = new IssuerSerial(
                new GeneralNames(new GeneralName(
                    X500Name.getInstance(cert.getIssuerX500Principal().getEncoded()))),
                cert.getSerialNumber());
            SigningCertificateV2 scv2 =
                new SigningCertificateV2(new ESSCertIDv2[] {new ESSCertIDv2(hash, issuerSerial)});
            ASN1EncodableVector attrs = new ASN1EncodableVector();
            attrs.add(new Attribute(PKCSObjectIdentifiers.id_aa_signingCertificateV2, new DERSet(scv2)));
            b.setSignedAttributeGenerator(new DefaultSignedAttributeTableGenerator(new AttributeTable(attrs)));
        }
        return b.build(signer, id.cert());
    }

    /** A detached CMS SignedData over `content`: DER, or BER from the streaming generator. */
    private static byte[] detachedCms(Identity id, byte[] content, boolean ber, boolean cades) throws Exception {
        JcaCertStore certs = new JcaCertStore(id.chain);
        if (ber) {
            CMSSignedDataStreamGenerator gen = new CMSSignedDataStreamGenerator();
            gen.addSignerInfoGenerator(signerInfo(id, cades));
            gen.addCertificates(certs);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try (OutputStream sink = gen.open(out, false)) {
                sink.write(content);
            }
            return out.toByteArray();
        }
        CMSSignedDataGenerator gen = new CMSSignedDataGenerator();
        gen.addSignerInfoGenerator(signerInfo(id, cades));
        gen.addCertificates(certs);
        CMSSignedData signed = gen.generate(new CMSProcessableByteArray(content), false);
        return signed.getEncoded(ASN1Encoding.DER);
    }

    private static void signPdf(Identity id, Path in, Path out, boolean ber, boolean cades) throws Exception {
        try (PDDocument doc = PDDocument.load(in.toFile());
             FileOutputStream fos = new FileOutputStream(out.toFile())) {
            PDSignature sig = new PDSignature();
            sig.setFilter(PDSignature.FILTER_ADOBE_PPKLITE);
            sig.setSubFilter(cades ? COSName.getPDFName("ETSI.CAdES.detached")
                                   : PDSignature.SUBFILTER_ADBE_PKCS7_DETACHED);
            sig.setName("PDFBox interop signer");
            sig.setReason("signgate interop matrix");
            sig.setSignDate(Calendar.getInstance());
            SignatureInterface signer = (InputStream content) -> {
                try {
                    return detachedCms(id, content.readAllBytes(), ber, cades);
                } catch (IOException e) {
                    throw e;
                } catch (Exception e) {
                    throw new IOException(e);
                }
            };
            doc.addSignature(sig, signer);
            doc.saveIncremental(fos);
        }
    }

    private static void signXml(Identity id, Path in, Path out, boolean exclusive) throws Exception {
        XMLSignatureFactory fac = XMLSignatureFactory.getInstance("DOM");
        Reference ref = fac.newReference("", fac.newDigestMethod(DigestMethod.SHA256, null),
            Collections.singletonList(fac.newTransform(Transform.ENVELOPED, (TransformParameterSpec) null)),
            null, null);
        String c14n = exclusive ? CanonicalizationMethod.EXCLUSIVE : CanonicalizationMethod.INCLUSIVE;
        String method = id.key.getAlgorithm().equals("EC") ? SignatureMethod.ECDSA_SHA256 : SignatureMethod.RSA_SHA256;
        SignedInfo si = fac.newSignedInfo(
            fac.newCanonicalizationMethod(c14n, (C14NMethodParameterSpec) null),
            fac.newSignatureMethod(method, null), Collections.singletonList(ref));
        KeyInfoFactory kif = fac.getKeyInfoFactory();
        KeyInfo ki = kif.newKeyInfo(Collections.singletonList(kif.newX509Data(new ArrayList<Object>(id.chain))));
        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        Document doc = dbf.newDocumentBuilder().parse(in.toFile());
        fac.newXMLSignature(si, ki).sign(new DOMSignContext(id.key, doc.getDocumentElement()));
        try (OutputStream os = Files.newOutputStream(out)) {
            TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(os));
        }
    }

    private static void run(String kind, Path p12, Path in, Path out) throws Exception {
        Identity id = new Identity(p12);
        switch (kind) {
            case "pdf-der": signPdf(id, in, out, false, false); break;
            case "pdf-ber": signPdf(id, in, out, true, false); break;
            case "pdf-cades": signPdf(id, in, out, false, true); break;
            case "cms-cades": Files.write(out, detachedCms(id, Files.readAllBytes(in), false, true)); break;
            case "cms-ber": Files.write(out, detachedCms(id, Files.readAllBytes(in), true, false)); break;
            case "xml-incl": signXml(id, in, out, false); break;
            case "xml-excl": signXml(id, in, out, true); break;
            default: throw new IllegalArgumentException("unknown job kind " + kind);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: InteropSigner JOBS.tsv");
            System.exit(64);
        }
        System.out.println("PDFBox " + org.apache.pdfbox.util.Version.getVersion()
            + ", BouncyCastle " + new BouncyCastleProvider().getVersionStr()
            + ", Java " + System.getProperty("java.specification.version"));
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t");
            run(f[0], Path.of(f[1]), Path.of(f[2]), Path.of(f[3]));
        }
    }
}
