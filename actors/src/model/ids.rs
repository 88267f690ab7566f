//! Opaque ids: 128 random bits as 32 lowercase hex characters.

use rand::RngCore;

/// Length of every id [`new_id`] makes.
pub const ID_LEN: usize = 32;

/// Whether `id` has the shape of an id this server makes ([`new_id`]). Every id ever handed
/// out has it, so an id without it names nothing and never needs a store lookup.
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new id.
pub fn new_id() -> String {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let mut out = String::with_capacity(32);
    for b in raw {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex() {
        let id = super::new_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(id, super::new_id());
        assert!(super::is_id(&id));
        assert!(!super::is_id(&id.to_uppercase()));
        assert!(!super::is_id(&id[1..]));
        assert!(!super::is_id(&format!("{id}0")));
        assert!(!super::is_id(&"g".repeat(32)));
    }
}
