//! Tests: the reference's test vectors, decode/generate round trips, and the unit's refusals.

use proptest::prelude::*;

use super::*;

/// The reference vectors, copied into the repo so a clean checkout has them (under
/// `tests/vectors/`: the root `.gitignore` ignores every `data/` folder).
const VECTORS: &str = include_str!("../../tests/vectors/openpaygo-token-vectors.jsonl");

/// The shared copy they were taken from (beside the repository, not always there).
const SHARED_VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/openpaygo-token-vectors.jsonl"
);

/// A key as in the first vector device.
const KEY_HEX: &str = "bc41ec9530f6dac86b1a29ab82edc5fb";
const STARTING_CODE: u32 = 516_959_010;

fn key() -> TokenKey {
    TokenKey::from_hex(KEY_HEX).unwrap()
}

/// One line of the vectors file.
struct Vector {
    line: usize,
    key: TokenKey,
    starting_code: u32,
    count: u32,
    kind: TokenKind,
    value: u32,
    format: TokenFormat,
    new_count: u32,
    token: String,
}

fn vectors() -> Vec<Vector> {
    VECTORS
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let num = |field: &str| u32::try_from(v[field].as_u64().unwrap()).unwrap();
            let kind = match v["token_type"].as_str().unwrap() {
                "ADD_TIME" => TokenKind::AddTime,
                "SET_TIME" => TokenKind::SetTime,
                "DISABLE_PAYG" => TokenKind::DisablePayg,
                "COUNTER_SYNC" => TokenKind::CounterSync,
                other => panic!("line {}: unknown token type {other}", i + 1),
            };
            Vector {
                line: i + 1,
                key: TokenKey::from_hex(v["key"].as_str().unwrap()).unwrap(),
                starting_code: num("starting_code"),
                count: num("count"),
                kind,
                // The reference passes `None` for the commands.
                value: v["value_raw"]
                    .as_u64()
                    .map_or(0, |x| u32::try_from(x).unwrap()),
                format: TokenFormat {
                    extended: v["extended_token"].as_bool().unwrap(),
                    restricted_digits: v["restricted_digit_set"].as_bool().unwrap(),
                },
                new_count: num("new_count"),
                token: v["token"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_reference_vector_is_reproduced() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 80);
    for v in &vectors {
        let token = generate(&v.key, v.starting_code, v.count, v.kind, v.value, v.format)
            .unwrap_or_else(|e| panic!("line {}: {e}", v.line));
        assert_eq!(token.code, v.token, "line {}: token", v.line);
        assert_eq!(token.count, v.new_count, "line {}: new count", v.line);
    }
}

#[test]
fn every_reference_vector_decodes_on_a_unit_at_its_count() {
    for v in vectors() {
        let decoded = decode(&v.key, v.starting_code, v.count, &[], &v.token, v.format)
            .unwrap_or_else(|e| panic!("line {}: {e}", v.line));
        assert_eq!(
            (decoded.kind, decoded.value, decoded.count),
            (v.kind, v.value, v.new_count),
            "line {}",
            v.line
        );
        // The unit, guessing the format from the length, agrees.
        let mut unit = Decoder::new(
            v.key.clone(),
            v.starting_code,
            v.format.restricted_digits,
            v.count,
            Vec::new(),
        );
        assert_eq!(unit.enter(&v.token), Ok(decoded), "line {}", v.line);
        assert_eq!(
            unit.enter(&v.token),
            Err(DecodeError::AlreadyUsed),
            "line {}",
            v.line
        );
    }
}

#[test]
fn in_repo_vectors_equal_the_shared_copy() {
    match std::fs::read(SHARED_VECTORS) {
        Ok(shared) => assert!(
            shared == VECTORS.as_bytes(),
            "billing-engine/tests/vectors/openpaygo-token-vectors.jsonl differs from {SHARED_VECTORS}"
        ),
        Err(e) => println!("note: {SHARED_VECTORS} not readable ({e}); comparison skipped"),
    }
}

#[test]
fn starting_code_from_key_matches_the_reference() {
    // `OpenPAYGOTokenShared.generate_starting_code` (openpaygo 0.6.3) for the two vector keys.
    assert_eq!(starting_code_from_key(&key()), 901_467_777);
    let other = TokenKey::from_hex("dac86b1a29ab82edc5fbbc41ec9530f6").unwrap();
    assert_eq!(starting_code_from_key(&other), 949_214_826);
}

#[test]
fn key_hex_is_checked() {
    let error = |hex: &str| TokenKey::from_hex(hex).err();
    assert_eq!(error(""), Some(KeyError::Length(0)));
    assert_eq!(error(&KEY_HEX[1..]), Some(KeyError::Length(31)));
    assert_eq!(error(&format!("{KEY_HEX}0")), Some(KeyError::Length(33)));
    assert_eq!(
        error(&format!("zz{}", &KEY_HEX[2..])),
        Some(KeyError::NotHex)
    );
    assert_eq!(
        error(&format!("é{}", &KEY_HEX[2..])),
        Some(KeyError::NotHex)
    );
    // Either case reads the same key.
    let upper = TokenKey::from_hex(&KEY_HEX.to_uppercase()).unwrap();
    assert_eq!(upper.bytes(), key().bytes());
}

#[test]
fn key_debug_hides_the_key() {
    let shown = format!("{:?}", key());
    assert_eq!(shown, "TokenKey(..)");
    let decoder = Decoder::new(key(), STARTING_CODE, false, 0, Vec::new());
    assert!(
        !format!("{decoder:?}")
            .to_lowercase()
            .contains(&KEY_HEX[..8])
    );
}

#[test]
fn values_out_of_range_are_refused() {
    let gen_with = |kind, value, format| generate(&key(), STARTING_CODE, 1, kind, value, format);
    for value in [996, 997, 998, 999, 1000, u32::MAX] {
        assert_eq!(
            gen_with(TokenKind::AddTime, value, TokenFormat::STANDARD),
            Err(TokenError::ValueTooHigh { value, max: 995 })
        );
        assert_eq!(
            gen_with(TokenKind::SetTime, value, TokenFormat::STANDARD),
            Err(TokenError::ValueTooHigh { value, max: 995 })
        );
    }
    for value in 996..=999 {
        assert_eq!(
            gen_with(TokenKind::SetTime, value, TokenFormat::EXTENDED),
            Err(TokenError::ReservedValue { value })
        );
    }
    assert_eq!(
        gen_with(TokenKind::AddTime, 1_000_000, TokenFormat::EXTENDED),
        Err(TokenError::ValueTooHigh {
            value: 1_000_000,
            max: 999_999
        })
    );
    // The edges that are allowed.
    assert!(gen_with(TokenKind::AddTime, 995, TokenFormat::STANDARD).is_ok());
    assert!(gen_with(TokenKind::AddTime, 0, TokenFormat::STANDARD).is_ok());
    assert!(gen_with(TokenKind::AddTime, 1000, TokenFormat::EXTENDED).is_ok());
    assert!(gen_with(TokenKind::AddTime, 999_999, TokenFormat::EXTENDED).is_ok());
    // Commands carry no value.
    for kind in [TokenKind::DisablePayg, TokenKind::CounterSync] {
        assert_eq!(
            gen_with(kind, 5, TokenFormat::STANDARD),
            Err(TokenError::ValueNotAllowed { kind, value: 5 })
        );
    }
}

#[test]
fn bad_starting_codes_and_counts_are_refused() {
    let k = key();
    assert_eq!(
        generate(
            &k,
            1_000_000_000,
            1,
            TokenKind::AddTime,
            1,
            TokenFormat::STANDARD
        ),
        Err(TokenError::StartingCodeOutOfRange(1_000_000_000))
    );
    assert_eq!(
        decode(&k, u32::MAX, 1, &[], "123456789", TokenFormat::STANDARD),
        Err(DecodeError::StartingCodeOutOfRange(u32::MAX))
    );
    for kind in [TokenKind::AddTime, TokenKind::SetTime] {
        assert_eq!(
            generate(&k, STARTING_CODE, u32::MAX, kind, 1, TokenFormat::STANDARD),
            Err(TokenError::CountOverflow(u32::MAX))
        );
    }
}

#[test]
fn malformed_codes_are_refused() {
    let k = key();
    let check = |code: &str, format| decode(&k, STARTING_CODE, 1, &[], code, format);
    assert_eq!(
        check("12345678a", TokenFormat::STANDARD),
        Err(DecodeError::BadCharacter {
            ch: 'a',
            restricted: false
        })
    );
    let restricted = TokenFormat {
        extended: false,
        restricted_digits: true,
    };
    assert_eq!(
        check("123412341234120", restricted),
        Err(DecodeError::BadCharacter {
            ch: '0',
            restricted: true
        })
    );
    assert_eq!(
        check("123412341234125", restricted),
        Err(DecodeError::BadCharacter {
            ch: '5',
            restricted: true
        })
    );
    for (code, format) in [
        ("", TokenFormat::STANDARD),
        ("1234567890", TokenFormat::STANDARD),
        ("123456789", TokenFormat::EXTENDED),
        ("1234567890123", TokenFormat::EXTENDED),
        ("1234123412341234", restricted),
    ] {
        assert_eq!(
            check(code, format),
            Err(DecodeError::WrongLength {
                len: code.len(),
                format
            }),
            "{code}"
        );
    }
    let mut unit = Decoder::new(k.clone(), STARTING_CODE, false, 1, Vec::new());
    assert!(matches!(
        unit.enter("1234567890123"),
        Err(DecodeError::WrongLength { len: 13, .. })
    ));
    assert!(matches!(
        unit.enter(""),
        Err(DecodeError::WrongLength { len: 0, .. })
    ));
}

#[test]
fn a_code_that_is_no_token_is_invalid() {
    let mut unit = Decoder::new(key(), STARTING_CODE, false, 1, Vec::new());
    assert_eq!(unit.enter("123456789"), Err(DecodeError::Invalid));
    assert_eq!(unit.enter("123456789012"), Err(DecodeError::Invalid));
    assert_eq!((unit.last_count(), unit.used_counts()), (1, &[][..]));
}

/// The server side of one unit: issues tokens and keeps the count.
struct Server {
    count: u32,
    format: TokenFormat,
}

impl Server {
    fn issue(&mut self, kind: TokenKind, value: u32) -> String {
        let token = generate(&key(), STARTING_CODE, self.count, kind, value, self.format).unwrap();
        self.count = token.count;
        token.code
    }
}

#[test]
fn unused_older_add_time_tokens_are_accepted_out_of_order() {
    let mut server = Server {
        count: 1,
        format: TokenFormat::STANDARD,
    };
    let mut unit = Decoder::new(key(), STARTING_CODE, false, 1, Vec::new());
    let first = server.issue(TokenKind::AddTime, 7);
    let second = server.issue(TokenKind::AddTime, 30);
    assert_eq!(unit.enter(&second).unwrap().value, 30);
    let late = unit.enter(&first).unwrap();
    assert_eq!(
        (late.kind, late.value, late.count),
        (TokenKind::AddTime, 7, 2)
    );
    assert_eq!(unit.last_count(), 4);
    assert_eq!(unit.used_counts(), &[2, 4]);
    assert_eq!(unit.enter(&first), Err(DecodeError::AlreadyUsed));
    assert_eq!(unit.enter(&second), Err(DecodeError::AlreadyUsed));
}

#[test]
fn set_time_voids_older_add_time_tokens() {
    let mut server = Server {
        count: 1,
        format: TokenFormat::EXTENDED,
    };
    let mut unit = Decoder::new(key(), STARTING_CODE, false, 1, Vec::new());
    let add = server.issue(TokenKind::AddTime, 1_500);
    let set = server.issue(TokenKind::SetTime, 20_000);
    let decoded = unit.enter(&set).unwrap();
    assert_eq!((decoded.kind, decoded.value), (TokenKind::SetTime, 20_000));
    assert_eq!(unit.enter(&add), Err(DecodeError::AlreadyUsed));
}

#[test]
fn tokens_too_far_ahead_are_invalid_but_counter_sync_reaches_further() {
    let mut server = Server {
        count: 1,
        format: TokenFormat::STANDARD,
    };
    let fresh = || Decoder::new(key(), STARTING_CODE, false, 1, Vec::new());
    let mut codes = Vec::new();
    for _ in 0..33 {
        codes.push(server.issue(TokenKind::AddTime, 1));
    }
    assert_eq!(server.count, 66);
    // Last count 1: counts up to 1 + 64 are looked at.
    assert_eq!(fresh().enter(&codes[31]).unwrap().count, 64);
    assert_eq!(fresh().enter(&codes[32]), Err(DecodeError::Invalid));
    // A standard counter sync is looked for up to 1 + 100.
    server.count = 100;
    let sync = server.issue(TokenKind::CounterSync, 0);
    assert_eq!(server.count, 101);
    let mut unit = fresh();
    let decoded = unit.enter(&sync).unwrap();
    assert_eq!((decoded.kind, decoded.count), (TokenKind::CounterSync, 101));
    assert_eq!(unit.last_count(), 101);
    assert_eq!(unit.enter(&sync), Err(DecodeError::AlreadyUsed));
    // The unit now accepts what follows the server's count again.
    let next = server.issue(TokenKind::AddTime, 3);
    assert_eq!(unit.enter(&next).unwrap().count, 102);
}

#[test]
fn an_old_counter_sync_never_moves_the_count_back() {
    let mut server = Server {
        count: 1,
        format: TokenFormat::STANDARD,
    };
    let mut unit = Decoder::new(key(), STARTING_CODE, false, 1, Vec::new());
    let sync = server.issue(TokenKind::CounterSync, 0);
    unit.enter(&sync).unwrap();
    for _ in 0..20 {
        let code = server.issue(TokenKind::AddTime, 1);
        unit.enter(&code).unwrap();
    }
    let last = unit.last_count();
    assert_eq!(last, 42);
    // Count 3 has left the used window but is within the counter-sync reach: taken again as in
    // the reference, yet the unit's count stays where it was.
    let again = unit.enter(&sync).unwrap();
    assert_eq!((again.count, again.last_count), (3, last));
    assert_eq!(unit.last_count(), last);
}

fn kind_strategy() -> impl Strategy<Value = TokenKind> {
    prop_oneof![
        Just(TokenKind::AddTime),
        Just(TokenKind::SetTime),
        Just(TokenKind::DisablePayg),
        Just(TokenKind::CounterSync),
    ]
}

/// A value `generate` accepts for the kind and format, from any `u32`.
fn fit_value(raw: u32, kind: TokenKind, format: TokenFormat) -> u32 {
    if !kind.carries_value() {
        return 0;
    }
    let value = raw % (format.max_value() + 1);
    if RESERVED_VALUES.contains(&value) {
        value - 4
    } else {
        value
    }
}

proptest! {
    // A fixed seed: a 9-digit code matches an unrelated count about once in a million, so a
    // random seed would fail a CI run now and then (~1 in 10,000) for no fault of the code.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0FA7),
        ..ProptestConfig::default()
    })]

    #[test]
    fn decode_gives_back_what_generate_made_and_refuses_it_again(
        key_bytes in any::<[u8; 16]>(),
        starting_code in 0..=MAX_STARTING_CODE,
        count in 0u32..200,
        kind in kind_strategy(),
        raw_value in any::<u32>(),
        extended in any::<bool>(),
        restricted_digits in any::<bool>(),
    ) {
        let key = TokenKey::from(key_bytes);
        let format = TokenFormat { extended, restricted_digits };
        let value = fit_value(raw_value, kind, format);
        let token = generate(&key, starting_code, count, kind, value, format).unwrap();

        let expected_len = match (extended, restricted_digits) {
            (false, false) => 9,
            (true, false) => 12,
            (false, true) => 15,
            (true, true) => 20,
        };
        prop_assert_eq!(token.code.len(), expected_len);
        prop_assert!(token.count > count);
        prop_assert_eq!(token.count % 2, u32::from(kind != TokenKind::AddTime));

        // A unit in step with the server that has used everything up to `count` (so that only
        // counts above it can match: a 9-digit code may also appear at a lower count by chance).
        let used: Vec<u32> = (count.saturating_sub(MAX_UNUSED_OLDER_TOKENS)..=count).collect();
        let decoded = decode(&key, starting_code, count, &used, &token.code, format).unwrap();
        prop_assert_eq!(decoded.kind, kind);
        prop_assert_eq!(decoded.value, value);
        prop_assert_eq!(decoded.count, token.count);
        prop_assert_eq!(decoded.last_count, token.count);
        prop_assert!(decoded.used_counts.contains(&token.count));

        // Typed again on that unit, it is refused (a standard code may also turn up by chance at
        // a later count, one in a million per count: that is another token, not this one).
        let mut unit = Decoder::new(
            key,
            starting_code,
            restricted_digits,
            decoded.last_count,
            decoded.used_counts,
        );
        match unit.enter(&token.code) {
            Err(DecodeError::AlreadyUsed) => {}
            Ok(other) => prop_assert_ne!(other.count, token.count),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn any_typed_text_is_refused_or_decoded_without_panicking(
        key_bytes in any::<[u8; 16]>(),
        starting_code in any::<u32>(),
        last_count in 0u32..100,
        used in proptest::collection::vec(0u32..120, 0..20),
        code in "[0-9a-z1-4 ]{0,24}",
        extended in any::<bool>(),
        restricted_digits in any::<bool>(),
    ) {
        let key = TokenKey::from(key_bytes);
        let format = TokenFormat { extended, restricted_digits };
        let _ = decode(&key, starting_code, last_count, &used, &code, format);
        let mut unit = Decoder::new(key, starting_code, restricted_digits, last_count, used);
        let _ = unit.enter(&code);
    }
}
