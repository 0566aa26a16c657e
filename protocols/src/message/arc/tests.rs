use super::*;

/// One ARC Set's three fields for instance `i` with seal status `cv`.
fn set(i: usize, cv: &str) -> String {
    format!(
        "ARC-Seal: i={i}; a=rsa-sha256; cv={cv}; d=example.org; s=sel; t=1; b=AAAA\r\n\
         ARC-Message-Signature: i={i}; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;\r\n \
         h=from:subject; bh=AAAA; b=AAAA\r\n\
         ARC-Authentication-Results: i={i}; mx{i}.example.org; spf=pass\r\n"
    )
}

fn sets(n: usize) -> String {
    (1..=n)
        .rev()
        .map(|i| set(i, if i == 1 { "none" } else { "pass" }))
        .collect()
}

fn state(header: &str) -> Result<usize, String> {
    match chain(format!("{header}From: a@example.org\r\n\r\n").as_bytes()) {
        Chain::None => Ok(0),
        Chain::Broken(e) => Err(e),
        Chain::Sets(s) => {
            for (n, set) in s.iter().enumerate() {
                assert_eq!(set.instance, n + 1);
            }
            Ok(s.len())
        }
    }
}

#[test]
fn structure_as_section_5_2_checks_it() {
    assert_eq!(state(""), Ok(0));
    assert_eq!(state(&sets(1)), Ok(1));
    assert_eq!(state(&sets(3)), Ok(3));
    // At the edge of the instance range, and one past it.
    assert_eq!(state(&sets(MAX_ARC_SETS)), Ok(MAX_ARC_SETS));
    assert_eq!(
        state(&format!(
            "{}{}",
            set(MAX_ARC_SETS + 1, "pass"),
            sets(MAX_ARC_SETS)
        )),
        Err("i= is not from 1 to 50".into())
    );
    assert_eq!(
        state(&format!("{}{}", set(3, "pass"), set(1, "none"))),
        Err("ARC Set 2 is incomplete".into())
    );
    assert_eq!(
        state(&format!("{}{}", set(1, "none"), set(1, "none"))),
        Err("two ARC fields of one kind at i=1".into())
    );
    assert_eq!(
        state(&set(1, "pass")),
        Err("ARC-Seal 1 has the wrong cv=".into())
    );
    assert_eq!(
        state(&format!("{}{}", set(2, "fail"), set(1, "none"))),
        Err("ARC-Seal 2 has the wrong cv=".into())
    );
    let no_seal: String = set(1, "none")
        .lines()
        .skip(1)
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert_eq!(state(&no_seal), Err("ARC Set 1 is incomplete".into()));
    let seal_h = set(1, "none").replace("t=1;", "h=from; t=1;");
    assert_eq!(state(&seal_h), Err("ARC-Seal has h=".into()));
    let covers_seal = set(1, "none").replace("h=from:subject", "h=from:arc-seal");
    assert_eq!(
        state(&covers_seal),
        Err("ARC-Message-Signature 1: h= names ARC-Seal".into())
    );
    let zero = set(1, "none").replace(
        "ARC-Authentication-Results: i=1",
        "ARC-Authentication-Results: i=0",
    );
    assert_eq!(state(&zero), Err("i= is not from 1 to 50".into()));
}

/// The seal of set 2 signs set 1 whole, then set 2 with its seal's b=
/// emptied, relaxed, in the order AAR, AMS, AS.
#[test]
fn seal_data_covers_the_sets_in_order() {
    let Chain::Sets(s) = chain(format!("{}From: a@example.org\r\n\r\n", sets(2)).as_bytes()) else {
        panic!("a chain");
    };
    let data = String::from_utf8(seal_data(&s, 1)).unwrap();
    assert_eq!(
        data,
        "arc-authentication-results:i=1; mx1.example.org; spf=pass\r\n\
         arc-message-signature:i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel; h=from:subject; bh=AAAA; b=AAAA\r\n\
         arc-seal:i=1; a=rsa-sha256; cv=none; d=example.org; s=sel; t=1; b=AAAA\r\n\
         arc-authentication-results:i=2; mx2.example.org; spf=pass\r\n\
         arc-message-signature:i=2; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel; h=from:subject; bh=AAAA; b=AAAA\r\n\
         arc-seal:i=2; a=rsa-sha256; cv=pass; d=example.org; s=sel; t=1; b="
    );
}
