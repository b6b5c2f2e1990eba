//! Sizes as people write them (`64MiB`, `512 KiB`, `1048576`), read and
//! written the same way by flags, the manifest and the help text.

/// Parse a byte size such as `64MiB`, `512 KiB` or `1048576`.
pub(crate) fn parse_bytes(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .trim()
        .parse()
        .map_err(|err| format!("{text:?} is not a size like 64MiB: {err}"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text:?} is too large"))
}

/// `bytes` in the largest binary unit that divides it: `1GiB`, `64MiB`, `1000`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for bytes in [0, 1000, 1 << 10, 64 << 20, 1 << 30, 100 << 30, 3 << 40] {
            assert_eq!(
                parse_bytes(&format_bytes(bytes)),
                Ok(bytes as usize),
                "{bytes}"
            );
        }
        assert_eq!(format_bytes(64 << 20), "64MiB");
        assert!(parse_bytes("lots").is_err());
    }
}
