//! What changed in a PDF after a signature (ETSI EN 319 142-1 §5.2; the "shadow" and
//! "incremental saving" attacks): the revision a signature covers is compared object by object
//! with the final document, and each change is classified as permitted (another signature,
//! a document time-stamp, validation data, form filling) or disallowed (page content,
//! resources, fonts, annotations, page geometry, …).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::revision::Objects;

/// The verdict on the changes after one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modifications {
    /// `none`, `permitted` or `disallowed` (the report's `modification`).
    pub level: &'static str,
    /// Each change, in words.
    pub changes: Vec<String>,
}

/// The certification level a certification signature grants (DocMDP /P).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DocMdp {
    /// P=1: no change at all.
    NoChanges = 1,
    /// P=2 (and approval signatures): form filling and signing.
    FormFilling = 2,
    /// P=3: also annotations.
    Annotations = 3,
}

/// Keys of the catalog that later revisions may add or change.
const PERMITTED_CATALOG_KEYS: [&[u8]; 5] =
    [b"AcroForm", b"DSS", b"Extensions", b"Version", b"Metadata"];

/// Compares the document as signed (its objects, `signed`) with the final one (`latest`).
pub fn compare(signed: &Objects<'_>, latest: &Document, mdp: DocMdp) -> Modifications {
    let mut c = Comparer::new(signed, latest);
    c.run();
    let disallowed = !c.disallowed.is_empty()
        || (mdp == DocMdp::NoChanges && !c.permitted.is_empty())
        || (mdp < DocMdp::Annotations && !c.annotations.is_empty());
    let mut changes = c.disallowed;
    changes.extend(c.annotations);
    changes.extend(c.permitted);
    let level = if disallowed {
        "disallowed"
    } else if changes.is_empty() {
        "none"
    } else {
        "permitted"
    };
    Modifications { level, changes }
}

struct Comparer<'a> {
    old: &'a Objects<'a>,
    new: &'a Document,
    /// Page number by page object id (final document).
    pages: BTreeMap<ObjectId, u32>,
    /// Page number by content stream id.
    contents: BTreeMap<ObjectId, u32>,
    /// Objects that permitted changes bring in (signature dictionaries, widgets and what
    /// their appearances use, validation data).
    allowed: BTreeSet<ObjectId>,
    /// Every object that an object left unchanged since the signed revision refers to (as
    /// [`collect_refs`] finds references), for [`Comparer::classify_addition`].
    referenced_by_unchanged: HashSet<ObjectId>,
    /// What the DSS refers to, found on first use by [`dss_references`].
    dss_refs: Option<HashSet<ObjectId>>,
    disallowed: Vec<String>,
    annotations: Vec<String>,
    permitted: Vec<String>,
}

impl<'a> Comparer<'a> {
    fn new(old: &'a Objects<'a>, new: &'a Document) -> Self {
        let pages: BTreeMap<ObjectId, u32> =
            new.get_pages().into_iter().map(|(n, id)| (id, n)).collect();
        let mut contents = BTreeMap::new();
        for (&page, &n) in &pages {
            if let Ok(dict) = new.get_dictionary(page) {
                for id in refs_of(dict.get(b"Contents").ok(), new) {
                    contents.insert(id, n);
                }
            }
        }
        Self {
            old,
            new,
            pages,
            contents,
            allowed: BTreeSet::new(),
            referenced_by_unchanged: HashSet::new(),
            dss_refs: None,
            disallowed: Vec::new(),
            annotations: Vec::new(),
            permitted: Vec::new(),
        }
    }

    fn run(&mut self) {
        // One comparison per object kept from the signed revision: a changed one is classified
        // below, an unchanged one may point at an object added later (classify_addition).
        let mut changed: Vec<ObjectId> = Vec::new();
        let mut refs = Vec::new();
        for (id, &old) in self.old {
            let Some(new) = self.new.objects.get(id) else {
                continue;
            };
            if same(old, new) {
                refs.clear();
                collect_refs(old, &mut refs, 0);
                self.referenced_by_unchanged.extend(refs.iter().copied());
            } else if !structural(new) {
                changed.push(*id);
            }
        }
        let added: BTreeSet<ObjectId> = self
            .new
            .objects
            .iter()
            .filter(|(id, obj)| !structural(obj) && !self.old.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        // First find what permitted additions reach, so that objects they bring in are allowed.
        for id in &added {
            if let Some(Object::Dictionary(d)) = self.new.objects.get(id) {
                // A new signature field (with its widgets merged or as /Kids), its
                // signature dictionary, or validation data (ISO 32000-2 §12.8.2.2.3:
                // adding signatures and DSS is always allowed).
                let sig_field = is_field(d) && field_type(d, self.new).as_deref() == Some(b"Sig");
                if sig_field || is_signature_widget(d, self.new) || is_sig_dict(d) || is_dss(d) {
                    self.allow_from(*id);
                }
            }
        }
        if let Ok(catalog) = self.new.catalog() {
            if let Ok(dss) = catalog.get(b"DSS") {
                for id in refs_of(Some(dss), self.new) {
                    self.allow_from(id);
                }
            }
        }
        for id in changed {
            self.classify_change(id);
        }
        for id in added {
            if !self.allowed.contains(&id) {
                self.classify_addition(id);
            }
        }
        let added_sigs = self.new_signature_count();
        if added_sigs > 0 {
            self.permitted.push(format!(
                "{added_sigs} signature(s) or document time-stamp(s) added"
            ));
        }
    }

    /// Whether `id` is the DSS dictionary or an indirect object inside it.
    fn in_dss(&mut self, id: ObjectId) -> bool {
        let new = self.new;
        self.dss_refs
            .get_or_insert_with(|| dss_references(new))
            .contains(&id)
    }

    /// Whether `id` is the object the catalog's `key` refers to, or one it refers to directly.
    fn in_catalog_entry(&self, key: &[u8], id: ObjectId) -> bool {
        let Some(entry) = self.new.catalog().ok().and_then(|c| c.get(key).ok()) else {
            return false;
        };
        let mut direct = Vec::new();
        collect_refs(entry, &mut direct, 0);
        if direct.contains(&id) {
            return true;
        }
        direct
            .iter()
            .any(|r| self.new.objects.get(r).is_some_and(|o| refers_to(o, id)))
    }

    fn new_signature_count(&self) -> usize {
        self.allowed
            .iter()
            .filter(|id| !self.old.contains_key(id))
            .filter(|id| matches!(self.new.objects.get(id), Some(Object::Dictionary(d)) if is_sig_dict(d)))
            .count()
    }

    /// Marks `root` and every new object reachable from it as brought in by a permitted change.
    fn allow_from(&mut self, root: ObjectId) {
        let mut stack = vec![root];
        let mut budget = 100_000usize;
        while let Some(id) = stack.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 || self.old.contains_key(&id) || !self.allowed.insert(id) {
                continue;
            }
            if let Some(obj) = self.new.objects.get(&id) {
                let mut out = Vec::new();
                collect_refs(obj, &mut out, 0);
                // Don't walk up into the page tree or the parent field.
                stack.extend(out.into_iter().filter(|r| !self.pages.contains_key(r)));
            }
        }
    }

    fn classify_change(&mut self, id: ObjectId) {
        let (Some(&old), Some(new)) = (self.old.get(&id), self.new.objects.get(&id)) else {
            return;
        };
        let trailer_info = self
            .new
            .trailer
            .get(b"Info")
            .ok()
            .and_then(|o| o.as_reference().ok());
        if Some(id) == trailer_info {
            return;
        }
        if let Some(&page) = self.pages.get(&id) {
            return self.page_change(page, old, new);
        }
        if is_metadata(new) {
            // XMP metadata is not rendered; signing tools update it (ISO 32000-1 §14.3.2).
            return self
                .permitted
                .push("document metadata (XMP) updated".into());
        }
        if self.in_dss(id) {
            return self.permitted.push("validation data (DSS) updated".into());
        }
        if let Some(&page) = self.contents.get(&id) {
            return self
                .disallowed
                .push(format!("page {page} content stream replaced"));
        }
        if is_extensions_object(old, |r| self.old.get(r).copied())
            && is_extensions_object(new, |r| self.new.objects.get(r))
            && self.in_catalog_entry(b"Extensions", id)
        {
            // Developer extensions only declare what the file uses (ISO 32000-2 §7.12).
            return self
                .permitted
                .push("developer extensions (/Extensions) updated".into());
        }
        if self.new.catalog().ok().map(|c| c as *const Dictionary)
            == new.as_dict().ok().map(|d| d as *const Dictionary)
        {
            return self.catalog_change(old, new);
        }
        match (old, new) {
            (Object::Array(a), Object::Array(b)) if self.array_appended_permitted(a, b) => {
                self.permitted.push(format!(
                    "object {} {} (array) extended with new signature fields",
                    id.0, id.1
                ));
            }
            (Object::Dictionary(a), Object::Dictionary(b)) if is_acroform(a) || is_acroform(b) => {
                self.acroform_change(id, a, b)
            }
            (Object::Dictionary(a), Object::Dictionary(b)) if is_field(a) => {
                self.field_change(id, a, b)
            }
            _ => self
                .disallowed
                .push(format!("{} changed", describe(id, new))),
        }
    }

    fn page_change(&mut self, page: u32, old: &Object, new: &Object) {
        let (Ok(a), Ok(b)) = (old.as_dict(), new.as_dict()) else {
            return self.disallowed.push(format!("page {page} replaced"));
        };
        for key in keys_differing(a, b) {
            if key == b"Annots" {
                let old_annots = self.array_of(a.get(b"Annots").ok());
                let new_annots = self.array_of(b.get(b"Annots").ok());
                self.annots_change(page, &old_annots, &new_annots);
            } else {
                let name = String::from_utf8_lossy(&key).into_owned();
                let what = match name.as_str() {
                    "Contents" => "content stream replaced".to_string(),
                    "Resources" => "resources changed (fonts, images or forms)".to_string(),
                    "CropBox" | "MediaBox" | "TrimBox" | "BleedBox" | "ArtBox" => {
                        format!("/{name} changed")
                    }
                    "Rotate" => "rotation changed".to_string(),
                    _ => format!("/{name} changed"),
                };
                self.disallowed.push(format!("page {page} {what}"));
            }
        }
    }

    fn annots_change(&mut self, page: u32, old: &[Object], new: &[Object]) {
        if new.len() < old.len() || new[..old.len()] != *old {
            return self
                .disallowed
                .push(format!("page {page} annotations removed or replaced"));
        }
        for added in &new[old.len()..] {
            let Some(id) = added.as_reference().ok() else {
                self.annotations
                    .push(format!("page {page} direct annotation added"));
                continue;
            };
            match self.new.objects.get(&id) {
                Some(Object::Dictionary(d)) if is_signature_widget(d, self.new) => {}
                // A widget that a new signature field lists in its /Kids (without /Parent).
                Some(Object::Dictionary(d))
                    if self.allowed.contains(&id)
                        && d.get(b"Subtype").ok().and_then(|s| s.as_name().ok())
                            == Some(b"Widget".as_slice()) => {}
                Some(Object::Dictionary(d)) => {
                    let subtype = d
                        .get(b"Subtype")
                        .ok()
                        .and_then(|s| s.as_name().ok())
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .unwrap_or_else(|| "?".into());
                    let appearance = if d.has(b"AP") {
                        " with an appearance"
                    } else {
                        ""
                    };
                    self.annotations.push(format!(
                        "page {page} annotation /{subtype} added{appearance}"
                    ));
                    self.allow_from(id);
                }
                _ => self
                    .annotations
                    .push(format!("page {page} annotation added")),
            }
        }
    }

    fn catalog_change(&mut self, old: &Object, new: &Object) {
        let (Ok(a), Ok(b)) = (old.as_dict(), new.as_dict()) else {
            return;
        };
        for key in keys_differing(a, b) {
            if key == b"AcroForm" {
                if let (Ok(Object::Dictionary(fa)), Ok(Object::Dictionary(fb))) =
                    (a.get(b"AcroForm"), b.get(b"AcroForm"))
                {
                    self.acroform_change((0, 0), fa, fb);
                }
            } else if key == b"DSS" {
                self.permitted.push("validation data (DSS) added".into());
            } else if !PERMITTED_CATALOG_KEYS.contains(&key.as_slice()) {
                self.disallowed.push(format!(
                    "document catalog /{} changed",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
    }

    fn acroform_change(&mut self, _id: ObjectId, a: &Dictionary, b: &Dictionary) {
        for key in keys_differing(a, b) {
            match key.as_slice() {
                b"Fields" => {
                    let old = self.array_of(a.get(b"Fields").ok());
                    let new = self.array_of(b.get(b"Fields").ok());
                    if !self.array_appended_permitted(&old, &new) {
                        self.disallowed
                            .push("form fields removed or replaced".into());
                    }
                }
                b"SigFlags" | b"DR" | b"DA" | b"NeedAppearances" => {}
                other => self
                    .disallowed
                    .push(format!("form /{} changed", String::from_utf8_lossy(other))),
            }
        }
    }

    fn field_change(&mut self, id: ObjectId, a: &Dictionary, b: &Dictionary) {
        let is_sig = field_type(a, self.new).as_deref() == Some(b"Sig".as_slice());
        for key in keys_differing(a, b) {
            match key.as_slice() {
                b"V" if is_sig && !a.has(b"V") => self
                    .permitted
                    .push(format!("empty signature field {} {} signed", id.0, id.1)),
                b"V" | b"AS" | b"AP" if !is_sig => self
                    .permitted
                    .push(format!("form field {} {} filled in", id.0, id.1)),
                // Signing an empty field may also set its widget's flags and look.
                b"AP" | b"F" | b"MK" | b"DA" if is_sig && !a.has(b"V") => {}
                other => self.disallowed.push(format!(
                    "field {} {} /{} changed",
                    id.0,
                    id.1,
                    String::from_utf8_lossy(other)
                )),
            }
        }
    }

    /// A new object that an unchanged object of the signed revision already pointed at (a
    /// dangling reference filled in later) changes what was signed. New objects used only by
    /// changed objects are reported with those; unused ones change nothing.
    fn classify_addition(&mut self, id: ObjectId) {
        let Some(obj) = self.new.objects.get(&id) else {
            return;
        };
        if self.referenced_by_unchanged.contains(&id) {
            self.disallowed.push(format!(
                "{} added where the signed revision referred to a missing object",
                describe(id, obj)
            ));
        }
    }

    fn array_of(&self, obj: Option<&Object>) -> Vec<Object> {
        match obj {
            Some(Object::Array(a)) => a.clone(),
            Some(Object::Reference(id)) => match self.new.objects.get(id) {
                Some(Object::Array(a)) => a.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// An array that only gained references to new signature fields or widgets, wherever
    /// they were inserted (the old entries keep their order).
    fn array_appended_permitted(&self, old: &[Object], new: &[Object]) -> bool {
        let mut remaining = old.iter().peekable();
        for item in new {
            if remaining.peek() == Some(&item) {
                remaining.next();
                continue;
            }
            let allowed = item
                .as_reference()
                .is_ok_and(|id| self.allowed.contains(&id));
            if !allowed {
                return false;
            }
        }
        remaining.peek().is_none()
    }
}

/// Objects of the file structure, not of the document (cross-reference and object streams).
fn structural(obj: &Object) -> bool {
    match obj {
        Object::Stream(s) => matches!(
            s.dict.get(b"Type").ok().and_then(|t| t.as_name().ok()),
            Some(b"XRef") | Some(b"ObjStm")
        ),
        _ => false,
    }
}

fn is_metadata(obj: &Object) -> bool {
    matches!(obj, Object::Stream(s) if s.dict.get(b"Type").ok().and_then(|t| t.as_name().ok()) == Some(b"Metadata"))
}

fn same(a: &Object, b: &Object) -> bool {
    if std::ptr::eq(a, b) {
        // An object the signed revision shares with the final document (see `revision`).
        return true;
    }
    match (a, b) {
        (Object::Stream(x), Object::Stream(y)) => {
            x.content == y.content && same_but_length(&x.dict, &y.dict)
        }
        _ => a == b,
    }
}

/// Whether two stream dictionaries are equal but for `/Length` (order does not matter, as in
/// `Dictionary`'s own equality).
fn same_but_length(a: &Dictionary, b: &Dictionary) -> bool {
    let others = |d: &Dictionary| d.len() - usize::from(d.has(b"Length"));
    others(a) == others(b)
        && a.iter()
            .filter(|(k, _)| k.as_slice() != b"Length")
            .all(|(k, v)| b.get(k).ok() == Some(v))
}

fn keys_differing(a: &Dictionary, b: &Dictionary) -> Vec<Vec<u8>> {
    let mut keys: BTreeSet<Vec<u8>> = a.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(b.iter().map(|(k, _)| k.clone()));
    keys.into_iter()
        .filter(|k| a.get(k).ok() != b.get(k).ok())
        .collect()
}

fn is_sig_dict(d: &Dictionary) -> bool {
    matches!(
        d.get(b"Type").ok().and_then(|t| t.as_name().ok()),
        Some(b"Sig") | Some(b"DocTimeStamp")
    ) || (d.has(b"ByteRange") && d.has(b"Contents") && d.has(b"Filter"))
}

fn is_dss(d: &Dictionary) -> bool {
    d.has(b"VRI")
        || (d.has(b"OCSPs") || d.has(b"CRLs")) && d.has(b"Certs")
        || d.get(b"Type").ok().and_then(|t| t.as_name().ok()) == Some(b"DSS")
}

/// The /Extensions dictionary (prefix → extension dictionaries or arrays of them) or one
/// developer extension dictionary (/BaseVersion, /ExtensionLevel), references resolved with
/// `resolve`: nothing that renders.
fn is_extensions_object<'o>(
    obj: &Object,
    resolve: impl Fn(&ObjectId) -> Option<&'o Object>,
) -> bool {
    let Ok(d) = obj.as_dict() else {
        return false;
    };
    let extension = |o: &Object| {
        let resolved = match o {
            Object::Reference(r) => resolve(r),
            other => Some(other),
        };
        resolved
            .and_then(|o| o.as_dict().ok())
            .is_some_and(|d| d.has(b"BaseVersion") && d.has(b"ExtensionLevel"))
    };
    (d.has(b"BaseVersion") && d.has(b"ExtensionLevel"))
        || d.iter().all(|(key, value)| {
            key.as_slice() == b"Type"
                || match value {
                    Object::Array(items) => items.iter().all(extension),
                    other => extension(other),
                }
        })
}

fn is_acroform(d: &Dictionary) -> bool {
    d.has(b"Fields") && !d.has(b"Type")
}

fn is_field(d: &Dictionary) -> bool {
    d.has(b"FT") || d.has(b"T") || d.has(b"Parent")
}

fn field_type(d: &Dictionary, doc: &Document) -> Option<Vec<u8>> {
    let mut current = d.clone();
    for _ in 0..32 {
        if let Ok(ft) = current.get(b"FT").and_then(|f| f.as_name()) {
            return Some(ft.to_vec());
        }
        let parent = current.get(b"Parent").ok()?.as_reference().ok()?;
        current = doc.get_dictionary(parent).ok()?.clone();
    }
    None
}

fn is_signature_widget(d: &Dictionary, doc: &Document) -> bool {
    let widget = d.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) == Some(b"Widget");
    widget && field_type(d, doc).as_deref() == Some(b"Sig".as_slice())
}

fn refs_of(obj: Option<&Object>, doc: &Document) -> Vec<ObjectId> {
    match obj {
        Some(Object::Reference(id)) => match doc.objects.get(id) {
            Some(Object::Array(items)) => {
                let mut v = vec![*id];
                v.extend(items.iter().filter_map(|i| i.as_reference().ok()));
                v
            }
            _ => vec![*id],
        },
        Some(Object::Array(items)) => items.iter().filter_map(|i| i.as_reference().ok()).collect(),
        _ => Vec::new(),
    }
}

fn collect_refs(obj: &Object, out: &mut Vec<ObjectId>, depth: usize) {
    if depth > 64 {
        return;
    }
    match obj {
        Object::Reference(id) => out.push(*id),
        Object::Array(items) => items.iter().for_each(|i| collect_refs(i, out, depth + 1)),
        Object::Dictionary(d) => d
            .iter()
            .filter(|(k, _)| k.as_slice() != b"P" && k.as_slice() != b"Parent")
            .for_each(|(_, v)| collect_refs(v, out, depth + 1)),
        Object::Stream(s) => s
            .dict
            .iter()
            .for_each(|(_, v)| collect_refs(v, out, depth + 1)),
        _ => {}
    }
}

/// Every object the final document's DSS refers to, directly or through the arrays and
/// dictionaries it refers to (streams are leaves), each visited once and at most
/// [`DSS_WALK_LIMIT`] values in all: computed once per comparison, since a DSS is looked up
/// for every changed object (a crafted file with thousands of changed objects and a large
/// DSS made a per-object walk take seconds).
fn dss_references(doc: &Document) -> HashSet<ObjectId> {
    let mut found = HashSet::new();
    let Some(dss) = doc.catalog().ok().and_then(|c| c.get(b"DSS").ok()) else {
        return found;
    };
    let mut stack = vec![dss];
    let mut walked = 0;
    while let Some(obj) = stack.pop() {
        walked += 1;
        if walked > DSS_WALK_LIMIT {
            break;
        }
        match obj {
            Object::Reference(r) if found.insert(*r) => {
                if let Some(o @ (Object::Dictionary(_) | Object::Array(_))) = doc.objects.get(r) {
                    stack.push(o);
                }
            }
            Object::Dictionary(d) => stack.extend(d.iter().map(|(_, v)| v)),
            Object::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    found
}

/// Values [`dss_references`] looks at before it stops: a DSS larger than that is not
/// recognised beyond it, so a change there is judged as any other object's.
const DSS_WALK_LIMIT: usize = 100_000;

fn refers_to(obj: &Object, target: ObjectId) -> bool {
    let mut out = Vec::new();
    collect_refs(obj, &mut out, 0);
    out.contains(&target)
}

fn describe(id: ObjectId, obj: &Object) -> String {
    let dict = match obj {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    };
    let name = |k: &[u8]| {
        dict.and_then(|d| d.get(k).ok())
            .and_then(|t| t.as_name().ok())
            .map(|n| String::from_utf8_lossy(n).into_owned())
    };
    let kind = match (name(b"Type"), name(b"Subtype")) {
        (Some(t), _) if t == "Font" || t == "FontDescriptor" => "font".to_string(),
        (_, Some(s)) if s == "Form" => "form XObject".to_string(),
        (_, Some(s)) if s == "Image" => "image".to_string(),
        (Some(t), Some(s)) => format!("/{t} /{s}"),
        (Some(t), None) => format!("/{t}"),
        (None, Some(s)) => format!("/{s}"),
        (None, None) if matches!(obj, Object::Stream(_)) => "stream".to_string(),
        _ => "object".to_string(),
    };
    format!("{kind} (object {} {})", id.0, id.1)
}

/// The DocMDP level of the document's certification signature, if any (catalog /Perms /DocMDP).
pub fn docmdp_level(doc: &Document) -> Option<DocMdp> {
    let perms = doc.catalog().ok()?.get(b"Perms").ok()?;
    let perms = match perms {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let sig = match perms.get(b"DocMDP").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let refs = sig.get(b"Reference").ok()?.as_array().ok()?;
    for r in refs {
        let r = match r {
            Object::Reference(id) => doc.get_dictionary(*id).ok()?,
            Object::Dictionary(d) => d,
            _ => continue,
        };
        if r.get(b"TransformMethod")
            .ok()
            .and_then(|m| m.as_name().ok())
            == Some(b"DocMDP")
        {
            let p = r
                .get(b"TransformParams")
                .ok()
                .and_then(|t| match t {
                    Object::Reference(id) => doc.get_dictionary(*id).ok(),
                    Object::Dictionary(d) => Some(d),
                    _ => None,
                })
                .and_then(|t| t.get(b"P").ok())
                .and_then(|p| p.as_i64().ok())
                .unwrap_or(2);
            return Some(match p {
                1 => DocMdp::NoChanges,
                3 => DocMdp::Annotations,
                _ => DocMdp::FormFilling,
            });
        }
    }
    None
}
