//! Preparing user names and passwords before they are compared or hashed,
//! after RFC 8265 (PRECIS for usernames and passwords).
//!
//! This is a faithful subset, not the full PRECIS machinery: Unicode
//! normalisation form C, and the rejection of what can never be part of a
//! name or a password. It does not apply the PRECIS derived-property tables.

use unicode_normalization::UnicodeNormalization;

/// Longest user name accepted, in UTF-8 octets (after normalisation).
pub const MAX_USERNAME: usize = 255;

/// Longest password accepted, in UTF-8 octets. Passwords are hashed with
/// a memory-hard function, so a bound keeps a login attempt cheap to refuse.
pub const MAX_PASSWORD: usize = 1024;

/// Why a user name or password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisError {
    #[error("empty")]
    Empty,
    #[error("contains a control character")]
    ControlCharacter,
    #[error("contains a space")]
    Space,
    #[error("longer than {max} octets")]
    TooLong { max: usize },
    #[error("empty local part or domain")]
    BadAddress,
    #[error("begins or ends with a space, which is easy to miss when typing it")]
    SurroundingSpace,
    #[error(
        "contains the invisible character U+{0:04X}, which cannot be told apart when typing it"
    )]
    Invisible(u32),
}

/// RFC 8265 3.3 (UsernameCasePreserved, simplified): NFC, surrounding
/// whitespace trimmed, no spaces or control characters inside. A name of
/// the form `local@domain` has its domain lower-cased (domains compare
/// case-insensitively); the local part keeps its case.
pub fn normalize_username(s: &str) -> Result<String, PrecisError> {
    let nfc: String = s.nfc().collect();
    let name = nfc.trim();
    if name.is_empty() {
        return Err(PrecisError::Empty);
    }
    // RFC 8264 9.11 (controls) and 9.14 (spaces): disallowed in
    // IdentifierClass.
    if name.chars().any(char::is_control) {
        return Err(PrecisError::ControlCharacter);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(PrecisError::Space);
    }
    let name = match name.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            format!("{local}@{}", domain.to_lowercase())
        }
        Some(_) => return Err(PrecisError::BadAddress),
        None => name.to_string(),
    };
    if name.len() > MAX_USERNAME {
        return Err(PrecisError::TooLong { max: MAX_USERNAME });
    }
    Ok(name)
}

/// RFC 8265 4.2 (OpaqueString, simplified): non-ASCII spaces mapped to
/// U+0020 (4.2.1), NFC, then empty passwords and control characters
/// refused (FreeformClass disallows controls, RFC 8264 9.11). Nothing is
/// trimmed: spaces are part of a password.
pub fn prepare_password(s: &str) -> Result<String, PrecisError> {
    let mapped: String = s
        .chars()
        .map(|c| if is_non_ascii_space(c) { ' ' } else { c })
        .nfc()
        .collect();
    if mapped.is_empty() {
        return Err(PrecisError::Empty);
    }
    if mapped.chars().any(char::is_control) {
        return Err(PrecisError::ControlCharacter);
    }
    if mapped.len() > MAX_PASSWORD {
        return Err(PrecisError::TooLong { max: MAX_PASSWORD });
    }
    Ok(mapped)
}

/// The form SCRAM clients hash a password in: RFC 5802 2.2 names
/// SASLprep (RFC 4013), which maps non-ASCII spaces to a space (done by
/// [`prepare_password`]), drops characters mapped to nothing (refused by
/// [`check_new_password`]) and normalises to NFKC. Applied to a prepared
/// password, so the stored SCRAM keys match what SASLprep clients derive.
pub fn scram_password(prepared: &str) -> String {
    prepared.nfkc().collect()
}

/// A password being set: prepared as [`prepare_password`] does, and also
/// refused where it would confuse its owner later: spaces at either end,
/// and invisible format characters (zero-width spaces and joiners, bidi
/// marks, soft hyphens, byte-order marks), which look like nothing.
pub fn check_new_password(s: &str) -> Result<String, PrecisError> {
    let prepared = prepare_password(s)?;
    if prepared.starts_with(' ') || prepared.ends_with(' ') {
        return Err(PrecisError::SurroundingSpace);
    }
    if let Some(c) = prepared.chars().find(|&c| is_invisible(c)) {
        return Err(PrecisError::Invisible(c as u32));
    }
    Ok(prepared)
}

/// Format characters (category Cf) that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// Unicode general category Zs, less U+0020.
fn is_non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            normalize_username("  Alice@Example.COM ").unwrap(),
            "Alice@example.com"
        );
        assert_eq!(normalize_username("bob").unwrap(), "bob");
        // NFC: e + combining acute becomes é.
        assert_eq!(
            normalize_username("jose\u{301}@X.org").unwrap(),
            "jos\u{e9}@x.org"
        );
        assert_eq!(normalize_username("a@Bücher.DE").unwrap(), "a@bücher.de");
        // The last @ separates the domain.
        assert_eq!(normalize_username("a@b@C").unwrap(), "a@b@c");
        assert_eq!(normalize_username(""), Err(PrecisError::Empty));
        assert_eq!(normalize_username(" \t "), Err(PrecisError::Empty));
        assert_eq!(normalize_username("a b"), Err(PrecisError::Space));
        assert_eq!(normalize_username("a\u{3000}b"), Err(PrecisError::Space));
        assert_eq!(
            normalize_username("a\u{0}b"),
            Err(PrecisError::ControlCharacter)
        );
        assert_eq!(
            normalize_username("a\u{7f}"),
            Err(PrecisError::ControlCharacter)
        );
        assert_eq!(normalize_username("@x"), Err(PrecisError::BadAddress));
        assert_eq!(normalize_username("x@"), Err(PrecisError::BadAddress));
    }

    #[test]
    fn username_length_edge() {
        let name = "u".repeat(MAX_USERNAME);
        assert_eq!(normalize_username(&name).unwrap(), name);
        assert_eq!(
            normalize_username(&format!("{name}u")),
            Err(PrecisError::TooLong { max: MAX_USERNAME })
        );
        // Octets, not characters: 127 two-octet letters plus one is 255.
        let name = format!("{}a", "é".repeat(127));
        assert!(normalize_username(&name).is_ok());
        assert!(normalize_username(&format!("{name}a")).is_err());
    }

    #[test]
    fn passwords() {
        assert_eq!(prepare_password(" pass word ").unwrap(), " pass word ");
        assert_eq!(prepare_password("a\u{00A0}b\u{3000}").unwrap(), "a b ");
        assert_eq!(prepare_password("e\u{301}").unwrap(), "\u{e9}");
        assert_eq!(prepare_password(""), Err(PrecisError::Empty));
        assert_eq!(prepare_password("a\tb"), Err(PrecisError::ControlCharacter));
        assert_eq!(
            prepare_password("a\u{85}"),
            Err(PrecisError::ControlCharacter)
        );
    }

    #[test]
    fn password_length_edge() {
        let pw = "p".repeat(MAX_PASSWORD);
        assert_eq!(prepare_password(&pw).unwrap(), pw);
        assert_eq!(
            prepare_password(&format!("{pw}p")),
            Err(PrecisError::TooLong { max: MAX_PASSWORD })
        );
    }

    #[test]
    fn confusing_new_passwords_are_refused() {
        assert_eq!(
            check_new_password("correct horse").unwrap(),
            "correct horse"
        );
        assert_eq!(
            check_new_password(" pw"),
            Err(PrecisError::SurroundingSpace)
        );
        // A no-break space at the end maps to a space: refused too.
        assert_eq!(
            check_new_password("pw\u{a0}"),
            Err(PrecisError::SurroundingSpace)
        );
        assert_eq!(
            check_new_password("pass\u{200b}word"),
            Err(PrecisError::Invisible(0x200b))
        );
        assert_eq!(
            check_new_password("\u{feff}pw"),
            Err(PrecisError::Invisible(0xfeff))
        );
        assert_eq!(
            PrecisError::Invisible(0x200b).to_string(),
            "contains the invisible character U+200B, which cannot be told apart when typing it"
        );
        // Logging in with such a password still works as before.
        assert_eq!(prepare_password(" pw").unwrap(), " pw");
    }

    #[test]
    fn scram_passwords_are_nfkc() {
        assert_eq!(scram_password("pencil"), "pencil");
        // U+FB01 LATIN SMALL LIGATURE FI and a full-width A.
        assert_eq!(scram_password("\u{fb01}sh\u{ff21}"), "fishA");
    }
}
