//! Decimal numbers as memcached reads and writes them: C's `strtoull`/`strtol` with
//! memcached's `safe_*` checks, for command arguments (`protocol`) and counter values
//! (`storage`'s incr/decr), and digits written without allocating.

/// C's isspace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads a number as strtoull does: optional white space, an optional sign, at least one
/// digit, no overflow, then the end, white space or a NUL. Gives (negative, magnitude).
pub fn c_number(text: &[u8]) -> Option<(bool, u64)> {
    let mut i = text.iter().take_while(|&&b| is_space(b)).count();
    let negative = text.get(i) == Some(&b'-');
    if matches!(text.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = text[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in &text[i..i + digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    match text.get(i + digits) {
        Some(&b) if !is_space(b) && b != 0 => None,
        _ => Some((negative, value)),
    }
}

/// memcached's safe_strtoull on one token: a minus sign is refused unless the wrapped value
/// looks positive.
pub fn strtoull(token: &[u8]) -> Option<u64> {
    let (negative, magnitude) = c_number(token)?;
    if !negative {
        return Some(magnitude);
    }
    let value = magnitude.wrapping_neg();
    if (value as i64) < 0 {
        return None;
    }
    Some(value)
}

/// memcached's safe_strtol into a 32-bit int: strtol's range check, then the low 32 bits.
pub fn strtol32(token: &[u8]) -> Option<i32> {
    let (negative, magnitude) = c_number(token)?;
    let value = if negative {
        if magnitude > 1 << 63 {
            return None;
        }
        0i64.wrapping_sub(magnitude as i64)
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some(value as i32)
}

/// Writes `n` in decimal into `buf`; returns the digits.
pub fn format(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `n` in decimal, without allocating.
pub fn push(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(format(n, &mut [0; 20]));
}

#[cfg(test)]
mod tests {
    use super::{c_number, push, strtol32, strtoull};

    #[test]
    fn numbers_read_as_c_does() {
        assert_eq!(strtoull(b"0"), Some(0));
        assert_eq!(strtoull(b"\t7"), Some(7));
        assert_eq!(strtoull(b"7\x00x"), Some(7));
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b"-"), None);
        assert_eq!(strtoull(b"+"), None);
        assert_eq!(strtoull(b""), None);
        assert_eq!(strtoull(b"7x"), None);
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"-9223372036854775809"), Some(9223372036854775807));
        assert_eq!(strtoull(b"-9223372036854775808"), None);
        assert_eq!(strtol32(b"-9223372036854775809"), None);
        assert_eq!(strtol32(b"9223372036854775808"), None);
        assert_eq!(strtol32(b"4294967295"), Some(-1));
        assert_eq!(c_number(b"  +12 \r\n"), Some((false, 12)));
        assert_eq!(c_number(b" \t "), None);
    }

    #[test]
    fn numbers_written_in_decimal() {
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            let mut out = b"x".to_vec();
            push(&mut out, n);
            assert_eq!(out, format!("x{n}").as_bytes());
        }
    }
}
