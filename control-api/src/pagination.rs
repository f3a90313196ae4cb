//! Paginated lists: `page_size` and an opaque `page_token` in, one page and the token of the
//! next out.
//!
//! A token is the hex encoding of a tag naming the kind of key and the key of the last item
//! returned, so reading the next page is one range scan from that key, and items added or
//! removed meanwhile never make a page repeat or skip the others. The tag makes a token of a
//! list ordered by another kind of key invalid. Tokens are only positions inside the
//! caller's own organisation's key range, so a forged one reveals nothing.

use crate::validate::FieldViolation;

/// Items per page when the request does not say.
pub const PAGE_SIZE_DEFAULT: usize = 50;
/// Most items in one page; larger requests get this many.
pub const PAGE_SIZE_MAX: usize = 500;
/// Longest accepted page token in characters; longer ones are refused before decoding.
const PAGE_TOKEN_CHARS_MAX: usize = 1_024;

/// The key a list is ordered by, as carried in its page tokens.
pub trait PageKey: Sized {
    /// Tags tokens carrying this kind of key, so a token of a list ordered by another kind
    /// is refused.
    const LIST: u8;
    /// The key's bytes.
    fn to_bytes(&self) -> Vec<u8>;
    /// The key back from its bytes, or `None` if they cannot be one.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// A list position as ids order it (team members).
impl PageKey for String {
    const LIST: u8 = 1;

    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// A list position as sequence numbers order it (the audit log).
impl PageKey for u64 {
    const LIST: u8 = 2;

    fn to_bytes(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// Which page of a list to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// Items to return at most.
    pub size: usize,
    /// The key of the last item of the previous page; `None` for the first page.
    pub after: Option<K>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
}

impl<K: PageKey> PageRequest<K> {
    /// Reads the request fields: size 0 means [`PAGE_SIZE_DEFAULT`], sizes above
    /// [`PAGE_SIZE_MAX`] are lowered to it, and an empty token starts at the beginning.
    pub fn parse(page_size: i32, page_token: &str) -> Result<PageRequest<K>, FieldViolation> {
        let size = match usize::try_from(page_size) {
            Ok(0) => PAGE_SIZE_DEFAULT,
            Ok(size) => size.min(PAGE_SIZE_MAX),
            Err(_) => return Err(FieldViolation::new("page_size", "must not be negative")),
        };
        let after = match page_token {
            "" => None,
            token => Some(decode::<K>(token).ok_or_else(|| {
                FieldViolation::new(
                    "page_token",
                    "not a next_page_token of a previous response of this list",
                )
            })?),
        };
        Ok(PageRequest { size, after })
    }

    /// Builds the page from the items that follow [`PageRequest::after`] in list order:
    /// takes [`PageRequest::size`] of them, and gives a next-page token only if at least one
    /// more exists (so the iterator is read one item past the page at most).
    pub fn page<T, E>(
        &self,
        items: impl Iterator<Item = Result<T, E>>,
        key_of: impl Fn(&T) -> K,
    ) -> Result<Page<T>, E> {
        let mut items = items.take(self.size + 1).collect::<Result<Vec<T>, E>>()?;
        let next_page_token = match items.len() > self.size {
            true => {
                items.truncate(self.size);
                items
                    .last()
                    .map(|last| encode(&key_of(last)))
                    .unwrap_or_default()
            }
            false => String::new(),
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

fn encode<K: PageKey>(key: &K) -> String {
    let mut bytes = vec![K::LIST];
    bytes.extend(key.to_bytes());
    hex::encode(bytes)
}

fn decode<K: PageKey>(token: &str) -> Option<K> {
    if token.len() > PAGE_TOKEN_CHARS_MAX {
        return None;
    }
    let bytes = hex::decode(token).ok()?;
    match bytes.split_first()? {
        (&tag, key) if tag == K::LIST => K::from_bytes(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(count: u64) -> impl Iterator<Item = Result<u64, ()>> {
        (1..=count).map(Ok)
    }

    #[test]
    fn sizes_default_clamp_and_refuse_negatives() {
        let parse = |size| PageRequest::<u64>::parse(size, "").map(|page| page.size);
        assert_eq!(parse(0), Ok(PAGE_SIZE_DEFAULT));
        assert_eq!(parse(7), Ok(7));
        assert_eq!(parse(100_000), Ok(PAGE_SIZE_MAX));
        assert_eq!(
            parse(-1).unwrap_err().to_string(),
            "page_size: must not be negative"
        );
    }

    #[test]
    fn walking_the_tokens_returns_every_item_exactly_once() {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let request = PageRequest::<u64>::parse(3, &token).unwrap();
            let after = request.after.unwrap_or(0);
            let page = request
                .page(numbers(10).filter(|n| *n.as_ref().unwrap() > after), |n| *n)
                .unwrap();
            seen.extend(page.items);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn an_exactly_full_last_page_has_no_next_token() {
        let request = PageRequest::<u64>::parse(5, "").unwrap();
        let page = request.page(numbers(5), |n| *n).unwrap();
        assert_eq!(page.items.len(), 5);
        assert_eq!(page.next_page_token, "");
    }

    #[test]
    fn member_id_keys_survive_the_round_trip() {
        let request = PageRequest::<String>::parse(1, "").unwrap();
        let page = request
            .page(
                ["mem_a", "mem_b"]
                    .map(|id| Ok::<_, ()>(id.to_owned()))
                    .into_iter(),
                Clone::clone,
            )
            .unwrap();
        let next = PageRequest::<String>::parse(1, &page.next_page_token).unwrap();
        assert_eq!(next.after.as_deref(), Some("mem_a"));
    }

    #[test]
    fn foreign_or_damaged_tokens_are_refused_naming_page_token() {
        let audit_token = encode(&42u64);
        let member_token = encode(&"mem_a".to_owned());
        let long = "0".repeat(PAGE_TOKEN_CHARS_MAX + 2);
        for token in [
            "zz",
            "0",
            "01",
            "02ff",
            member_token.as_str(),
            long.as_str(),
        ] {
            let error = PageRequest::<u64>::parse(10, token).unwrap_err();
            assert_eq!(error.field, "page_token", "{token}");
        }
        assert!(PageRequest::<String>::parse(10, &audit_token).is_err());
        assert_eq!(
            PageRequest::<u64>::parse(10, &audit_token).unwrap().after,
            Some(42)
        );
    }
}
