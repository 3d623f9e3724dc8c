//! The repcached link format against the bytes a real repcached 2.3.1 pair wrote
//! (`../shared/repcached-link/` beside the project, as CI and every developer have it):
//! what repcached sends must parse to the right messages, and what we write must be those
//! very bytes; and hostile input must be refused, never half-applied.

use std::path::PathBuf;

use super::wire::{parse, put_copy_end, put_delete, put_flush, put_rep, Message, Parsed};

const MAX_VALUE: usize = 1024 * 1024;

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/repcached-link")
}

fn capture(name: &str) -> Vec<u8> {
    let path = captures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (../shared must sit beside the project)", path.display()))
}

/// Every message of a whole capture; fails on anything left over or refused.
fn messages(bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse(&bytes[at..], MAX_VALUE) {
            Parsed::Complete(message, used) => {
                out.push(message);
                at += used;
            }
            other => panic!("at byte {at}: {other:?}"),
        }
    }
    out
}

fn encode(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        match message {
            Message::Rep { key, flags, exptime, cas, value } => put_rep(&mut out, key, *flags, *exptime, *cas, value),
            Message::Delete { key } => put_delete(&mut out, key),
            Message::FlushAll { at } => put_flush(&mut out, *at),
            Message::CopyEnd => put_copy_end(&mut out),
        }
    }
    out
}

fn rep(key: &str, flags: u32, exptime: u32, cas: u64, value: &[u8]) -> Message {
    Message::Rep { key: key.into(), flags, exptime, cas, value: value.to_vec() }
}

fn delete(key: &str) -> Message {
    Message::Delete { key: key.into() }
}

/// The capture files present (the two 22 MB stalled-link ones are not kept).
fn all_captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(captures())
        .unwrap_or_else(|e| panic!("{}: {e}", captures().display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_full_copy_parses_to_every_item_then_the_end_marker() {
    let got = messages(&capture("00-marugoto.A2B.bin"));
    let want = vec![
        rep("pre_exp_rel", 0, 1795464945, 4, b"v-exp-rel"),
        rep("pre_flags", 42, 0, 2, b"v-flags"),
        rep("pre_big", 0, 0, 8, &[b'x'; 2000]),
        rep("pre_crlf", 0, 0, 6, b"a\r\nb\r\n"),
        rep("pre_plain", 0, 0, 1, b"v-plain"),
        rep("pre_flagsmax", u32::MAX, 0, 3, b"max"),
        rep("pre_exp_abs", 0, 1795465245, 5, b"v-exp-abs"),
        Message::CopyEnd,
    ];
    assert_eq!(got, want);
}

#[test]
fn each_command_scenario_parses_to_what_the_transcript_shows() {
    let cases: Vec<(&str, Vec<Message>)> = vec![
        ("01-set.onA.A2B.bin", vec![rep("s1a", 0, 0, 9, b"hello"), rep("s1a", 0, 0, 10, b"HELLO"), rep("s2a", 7, 0, 11, b"abc")]),
        ("03-replace.onB.B2A.bin", vec![rep("r1b", 5, 0, 6, b"v1"), rep("r1b", 5, 0, 6, b"v1")]),
        ("05-prepend.onA.A2B.bin", vec![rep("apa", 3, 0, 17, b"PPPBASEAAA")]),
        ("08-decr.onA.A2B.bin", vec![rep("n1a", 0, 0, 23, b"5"), rep("n1a", 0, 0, 24, b"0")]),
        ("09-touch.onA.A2B.bin", vec![rep("t1a", 0, 1795464751, 25, b"tv"), rep("t1a", 0, 1795465651, 25, b"tv")]),
        ("10-delete.onB.B2A.bin", vec![delete("d1b"), delete("d1b"), delete("d2b"), delete("d2b")]),
        (
            "11-exptime.onA.A2B.bin",
            vec![
                rep("erela", 0, 1795464752, 28, b"r"),
                rep("eabsa", 0, 1795465652, 29, b"a"),
                delete("enega"),
                rep("e30da", 0, 1798056652, 31, b"m"),
                rep("e1sa", 0, 1795464653, 32, b"s"),
            ],
        ),
        (
            "12-flags.onB.B2A.bin",
            vec![
                rep("f0b", 0, 0, 25, b"0"),
                rep("f1b", 1, 0, 26, b"1"),
                rep("fmaxb", 4294967295, 0, 27, b"M"),
                rep("foverb", 0, 0, 28, b"O"),
            ],
        ),
        ("13-flush_all.onA.A2B.bin", vec![rep("fl1a", 0, 0, 37, b"1"), Message::FlushAll { at: None }]),
        (
            "14-flush_all_delay.onB.B2A.bin",
            vec![rep("fd1b", 0, 0, 30, b"1"), Message::FlushAll { at: Some(1795464676) }, rep("fd2b", 0, 0, 31, b"2")],
        ),
        ("15-flush_all_0.onA.A2B.bin", vec![rep("fz1a", 0, 0, 40, b"1"), Message::FlushAll { at: Some(1795464643) }]),
        (
            "16-flush_all_noreply.onB.B2A.bin",
            vec![rep("fn1b", 0, 0, 33, b"1"), Message::FlushAll { at: None }, Message::FlushAll { at: Some(1795464681) }],
        ),
        ("17-binary.onA.A2B.bin", vec![rep("binna", 0, 0, 44, b"103")]),
    ];
    for (name, want) in cases {
        assert_eq!(messages(&capture(name)), want, "{name}");
    }
}

#[test]
fn every_capture_parses_whole_and_we_write_the_same_bytes_but_flags_unsigned() {
    let names = all_captures();
    assert!(names.len() >= 35, "captures missing: {names:?}");
    for name in names {
        let bytes = capture(&name);
        let ours = encode(&messages(&bytes));
        // repcached prints 4294967295 as -1 (and refuses that itself); we print it as it reads it.
        let theirs = String::from_utf8_lossy(&bytes).replace(" -1 0 ", " 4294967295 0 ");
        assert_eq!(String::from_utf8_lossy(&ours), theirs, "{name}");
    }
}

#[test]
fn what_we_send_for_each_kind_is_byte_for_byte_what_repcached_sends() {
    let mut out = Vec::new();
    put_rep(&mut out, b"s1b", 0, 0, 1, b"hello");
    put_rep(&mut out, b"s1b", 0, 0, 2, b"HELLO");
    put_rep(&mut out, b"s2b", 7, 0, 3, b"abc");
    assert_eq!(out, capture("01-set.onB.B2A.bin"));
    let mut out = Vec::new();
    for key in ["d1b", "d1b", "d2b", "d2b"] {
        put_delete(&mut out, key.as_bytes());
    }
    assert_eq!(out, capture("10-delete.onB.B2A.bin"));
    let mut out = Vec::new();
    put_rep(&mut out, b"fn1b", 0, 0, 33, b"1");
    put_flush(&mut out, None);
    put_flush(&mut out, Some(1795464681));
    assert_eq!(out, capture("16-flush_all_noreply.onB.B2A.bin"));
    let mut out = Vec::new();
    put_copy_end(&mut out);
    assert!(capture("00-marugoto.A2B.bin").ends_with(&out));
}

#[test]
fn every_cut_of_a_capture_waits_for_more_or_yields_a_whole_message() {
    let bytes = capture("00-marugoto.A2B.bin");
    let first_len = match parse(&bytes, MAX_VALUE) {
        Parsed::Complete(_, used) => used,
        other => panic!("{other:?}"),
    };
    for cut in 0..first_len {
        assert_eq!(parse(&bytes[..cut], MAX_VALUE), Parsed::Incomplete, "cut at {cut}");
    }
}

#[test]
fn anything_but_repcached_s_own_lines_is_refused() {
    let long_key = format!("rep {} 0 0 1 1\r\nx\r\n", "k".repeat(251));
    let no_line_end = "x".repeat(600);
    let hostile: Vec<&[u8]> = vec![
        b"get k\r\n",
        b"set k 0 0 1\r\nx\r\n",
        b"rep k 0 0 1\r\nx\r\n",
        b"rep k 0 0 1 1 noreply\r\nx\r\n",
        b"rep  k 0 0 1 1\r\nx\r\n",
        b"rep k 0 0 1 1\r\nxy\r\n",
        b"rep k 0 0 2 1\r\nxyz\r\n",
        b"rep k -2147483649 0 1 1\r\nx\r\n",
        b"rep k 4294967296 0 1 1\r\nx\r\n",
        b"rep k -0 0 1 1\r\nx\r\n",
        b"rep k 0 -1 1 1\r\nx\r\n",
        b"rep k 0 4294967296 1 1\r\nx\r\n",
        b"rep k 0 0 -1 1\r\nx\r\n",
        b"rep k 0 0 1048577 1\r\n",
        b"rep k 0 0 1 18446744073709551616\r\nx\r\n",
        b"rep k +1 0 1 1\r\nx\r\n",
        b"rep k\x01 0 0 1 1\r\nx\r\n",
        long_key.as_bytes(),
        b"delete\r\n",
        b"delete k noreply\r\n",
        b"delete k 0\r\n",
        b"flush_all\r\n",
        b"flush_all 0\r\n",
        b"flush_all -5\r\n",
        b"flush_all  \r\n",
        b"flush_all noreply\r\n",
        b"marugoto_end \r\n",
        b"MARUGOTO_END\r\n",
        b"\r\n",
        b"rep k 0 0 1 1\nx\n",
        no_line_end.as_bytes(),
    ];
    for bytes in hostile {
        assert!(matches!(parse(bytes, MAX_VALUE), Parsed::Invalid(_)), "accepted {:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn flags_read_signed_or_unsigned_and_values_up_to_the_limit() {
    let parsed = |text: &str| match parse(text.as_bytes(), 3) {
        Parsed::Complete(message, used) => {
            assert_eq!(used, text.len());
            message
        }
        other => panic!("{text:?}: {other:?}"),
    };
    assert_eq!(parsed("rep k -2147483648 0 1 1\r\nx\r\n"), rep("k", 1 << 31, 0, 1, b"x"));
    assert_eq!(parsed("rep k 2147483648 0 1 1\r\nx\r\n"), rep("k", 1 << 31, 0, 1, b"x"));
    assert_eq!(parsed("rep k -2 0 3 1\r\nabc\r\n"), rep("k", u32::MAX - 1, 0, 1, b"abc"));
    assert!(matches!(parse(b"rep k 0 0 4 1\r\n", 3), Parsed::Invalid(_)));
    assert_eq!(parsed("rep k 0 0 0 18446744073709551615\r\n\r\n"), rep("k", 0, 0, u64::MAX, b""));
}
