//! ARC (RFC 8617), the parts that read the message: the ARC Sets of a
//! header section, their structure (5.2 steps 1 to 4), and the data each
//! ARC-Seal signs (5.1.1). The newest ARC-Message-Signature is read as a
//! DKIM signature (`dkim_verify`); keys and signature checks are the
//! caller's.

use super::dkim_verify::{
    b64, canonical, is_dns_name, no_space, parse_signature, raw_fields, tags, without_b, Algorithm,
    Canon, Signature, SignatureField,
};

/// RFC 8617 4.2.1: instances run from 1 to 50.
pub const MAX_ARC_SETS: usize = 50;

/// RFC 8617 4.1.3 `cv`: the chain's state when a seal was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStatus {
    None,
    Fail,
    Pass,
}

/// One ARC-Seal, read.
#[derive(Debug, Clone)]
pub struct Seal {
    pub algorithm: Algorithm,
    pub domain: String,
    pub selector: String,
    pub cv: ChainStatus,
    pub signature: Vec<u8>,
}

/// One ARC Set (RFC 8617 4.1): the three fields of one instance.
#[derive(Debug, Clone)]
pub struct ArcSet {
    pub instance: usize,
    pub seal: Seal,
    /// The ARC-Message-Signature, read as a DKIM signature.
    pub message_signature: Signature,
    /// The fields as sent: ARC-Authentication-Results,
    /// ARC-Message-Signature, ARC-Seal.
    raw: [Vec<u8>; 3],
}

/// The ARC Sets of a header section, or why the chain is broken.
#[derive(Debug, Clone)]
pub enum Chain {
    /// No ARC fields at all (arc=none).
    None,
    /// The structure is wrong (arc=fail, RFC 8617 5.2 steps 2 to 4).
    Broken(String),
    /// Sets in instance order, 1 to N, structurally valid.
    Sets(Vec<ArcSet>),
}

/// The `i=` of an ARC field's value, when it is a number from 1 to
/// [`MAX_ARC_SETS`].
fn instance(value: &str) -> Result<usize, String> {
    let first = value.split(';').next().unwrap_or_default();
    let (k, v) = first.split_once('=').ok_or("no i= first")?;
    if k.trim() != "i" {
        return Err("no i= first".into());
    }
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_ARC_SETS).contains(&n) => Ok(n),
        _ => Err(format!("i= is not from 1 to {MAX_ARC_SETS}")),
    }
}

fn instance_tag(value: &str) -> Result<usize, String> {
    let t = tags(value);
    let v = t
        .iter()
        .find(|(k, _)| k == "i")
        .map(|(_, v)| v.as_str())
        .ok_or("no i=")?;
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_ARC_SETS).contains(&n) => Ok(n),
        _ => Err(format!("i= is not from 1 to {MAX_ARC_SETS}")),
    }
}

fn parse_seal(value: &str) -> Result<Seal, String> {
    let t = tags(value);
    for (i, (name, _)) in t.iter().enumerate() {
        if t[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("{name}= appears twice in ARC-Seal"));
        }
    }
    let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // RFC 8617 4.1.3: h= is not allowed in a seal.
    if get("h").is_some() {
        return Err("ARC-Seal has h=".into());
    }
    let algorithm = match get("a") {
        Some("rsa-sha256") => Algorithm::RsaSha256,
        Some("ed25519-sha256") => Algorithm::Ed25519Sha256,
        _ => return Err("unknown ARC-Seal algorithm".into()),
    };
    let cv = match get("cv").map(str::to_ascii_lowercase).as_deref() {
        Some("none") => ChainStatus::None,
        Some("fail") => ChainStatus::Fail,
        Some("pass") => ChainStatus::Pass,
        _ => return Err("ARC-Seal without a valid cv=".into()),
    };
    let domain = get("d").ok_or("ARC-Seal without d=")?.to_lowercase();
    let selector = get("s").ok_or("ARC-Seal without s=")?.to_string();
    if !is_dns_name(&domain) || !is_dns_name(&selector) {
        return Err("ARC-Seal d= or s= is not a domain name".into());
    }
    let b = no_space(get("b").ok_or("ARC-Seal without b=")?);
    Ok(Seal {
        algorithm,
        domain,
        selector,
        cv,
        signature: b64(&b)?,
    })
}

/// RFC 8617 5.2 steps 1 to 4: collects the ARC Sets and checks their
/// form: exactly one of each field per instance, instances 1 to N with
/// none missing, cv=none at 1 and pass above it (a top cv=fail fails).
pub fn chain(header: &[u8]) -> Chain {
    let fields = raw_fields(header);
    let mut sets: Vec<[Option<Vec<u8>>; 3]> = Vec::new();
    let mut seen_any = false;
    let mut ams_index = 0;
    let mut ams: Vec<(usize, usize)> = Vec::new();
    for (name, raw) in &fields {
        let slot = if name.eq_ignore_ascii_case(b"ARC-Authentication-Results") {
            0
        } else if name.eq_ignore_ascii_case(b"ARC-Message-Signature") {
            1
        } else if name.eq_ignore_ascii_case(b"ARC-Seal") {
            2
        } else {
            continue;
        };
        seen_any = true;
        let text = String::from_utf8_lossy(raw);
        let value = text.split_once(':').map_or("", |(_, v)| v);
        let i = match slot {
            0 => instance(value),
            _ => instance_tag(value),
        };
        let i = match i {
            Ok(i) => i,
            Err(e) => return Chain::Broken(e),
        };
        if slot == 1 {
            ams.push((i, ams_index));
            ams_index += 1;
        }
        if sets.len() < i {
            sets.resize(i, [None, None, None]);
        }
        if sets[i - 1][slot].is_some() {
            return Chain::Broken(format!("two ARC fields of one kind at i={i}"));
        }
        sets[i - 1][slot] = Some(raw.clone());
    }
    if !seen_any {
        return Chain::None;
    }
    let mut out = Vec::with_capacity(sets.len());
    for (n, set) in sets.into_iter().enumerate() {
        let instance = n + 1;
        let [Some(aar), Some(ams_raw), Some(seal_raw)] = set else {
            return Chain::Broken(format!("ARC Set {instance} is incomplete"));
        };
        let value = |raw: &[u8]| {
            let text = String::from_utf8_lossy(raw).into_owned();
            text.split_once(':')
                .map_or(String::new(), |(_, v)| v.to_string())
        };
        let seal = match parse_seal(&value(&seal_raw)) {
            Ok(s) => s,
            Err(e) => return Chain::Broken(e),
        };
        let expected = if instance == 1 {
            ChainStatus::None
        } else {
            ChainStatus::Pass
        };
        if seal.cv != expected {
            return Chain::Broken(format!("ARC-Seal {instance} has the wrong cv="));
        }
        let index = ams
            .iter()
            .find(|(i, _)| *i == instance)
            .map_or(0, |(_, idx)| *idx);
        let message_signature =
            match parse_signature(&value(&ams_raw), index, SignatureField::ArcMessage) {
                Ok(s) => s,
                Err(e) => return Chain::Broken(format!("ARC-Message-Signature {instance}: {e}")),
            };
        out.push(ArcSet {
            instance,
            seal,
            message_signature,
            raw: [aar, ams_raw, seal_raw],
        });
    }
    Chain::Sets(out)
}

/// RFC 8617 5.1.1: what the seal of set `upto` (an index into `sets`)
/// signs: every set from the first to it, each as its
/// ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal in
/// relaxed form, the last seal without its b= value and final CRLF.
pub fn seal_data(sets: &[ArcSet], upto: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for (n, set) in sets.iter().enumerate().take(upto + 1) {
        data.extend_from_slice(&canonical(Canon::Relaxed, &set.raw[0]));
        data.extend_from_slice(&canonical(Canon::Relaxed, &set.raw[1]));
        if n == upto {
            let mut own = canonical(Canon::Relaxed, &without_b(&set.raw[2]));
            own.truncate(own.len().saturating_sub(2));
            data.extend_from_slice(&own);
        } else {
            data.extend_from_slice(&canonical(Canon::Relaxed, &set.raw[2]));
        }
    }
    data
}

#[cfg(test)]
mod tests;
