//! API tokens: how a request proves which team member it acts for.
//!
//! A token is `slt_` and 64 hex digits (256 random bits), shown once when issued. Only a
//! keyed BLAKE3 hash is stored, and a request's token is found by that hash: the token has
//! full entropy, so a fast hash is as strong as a password hash here, and the B-tree lookup
//! of a keyed hash reveals nothing useful through its timing. Revoking a token deletes it, so
//! a revoked token is indistinguishable from one never issued.

use redb::ReadableTable;

use super::audit::AuditAction;
use super::records::{MEMBER_TOKENS, MEMBERS, TOKENS, Token, member_in};
use super::{Change, Directory, DirectoryError, decode, encode, new_id};
use crate::roles::Caller;
use crate::validate;

/// Most active tokens one member may hold; one more is refused (RESOURCE_EXHAUSTED) until
/// one is revoked. Keeps each member's token list, and its deletion at removal, small.
pub const TOKENS_PER_MEMBER_MAX: usize = 20;

const TOKEN_PREFIX: &str = "slt_";
const TOKEN_SECRET_BYTES: usize = 32;
/// BLAKE3 key-derivation context: binds stored hashes to this purpose.
const TOKEN_HASH_CONTEXT: &str = "sunledger 2026-11 api token hash v1";

/// A bearer token, returned once when issued and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    fn generate() -> TokenSecret {
        let mut bytes = [0u8; TOKEN_SECRET_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        TokenSecret(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// The token as the member sends it: `authorization: Bearer <token>`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// A newly issued token: its description and the secret, shown only this once.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// What is stored about it.
    pub token: Token,
    /// The bearer token itself.
    pub secret: TokenSecret,
}

/// Whether `presented` has the shape of a token (`slt_` and 64 lower-case hex digits), so
/// anything else is refused without a lookup.
pub fn is_well_formed(presented: &str) -> bool {
    presented.strip_prefix(TOKEN_PREFIX).is_some_and(|digits| {
        digits.len() == TOKEN_SECRET_BYTES * 2
            && digits
                .bytes()
                .all(|digit| matches!(digit, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn hash(secret: &str) -> [u8; 32] {
    blake3::derive_key(TOKEN_HASH_CONTEXT, secret.as_bytes())
}

impl Directory {
    /// The caller a token acts for, with the member's current role; `None` if no such token
    /// exists (never issued, revoked, or its member removed).
    pub fn authenticate(&self, presented: &str) -> Result<Option<Caller>, DirectoryError> {
        let txn = self.read()?;
        let tokens = txn.open_table(TOKENS)?;
        let Some(stored) = tokens.get(hash(presented))? else {
            return Ok(None);
        };
        let token: Token = decode(stored.value())?;
        let member = match member_in(&txn.open_table(MEMBERS)?, &token.org_id, &token.member_id) {
            Err(DirectoryError::MemberNotFound(_)) => Err(DirectoryError::Corrupt(format!(
                "token {} has no member",
                token.id
            ))),
            found => found,
        }?;
        Ok(Some(Caller {
            org_id: member.org_id,
            member_id: member.id,
            role: member.role,
        }))
    }

    /// The active tokens of member `member_id` of `org_id`, by id.
    pub fn tokens(&self, org_id: &str, member_id: &str) -> Result<Vec<Token>, DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        let txn = self.read()?;
        member_in(&txn.open_table(MEMBERS)?, org_id, member_id)?;
        let hashes = token_hashes(&txn.open_table(MEMBER_TOKENS)?, org_id, member_id)?;
        let tokens = txn.open_table(TOKENS)?;
        let mut listed = Vec::with_capacity(hashes.len());
        for (token_id, hash) in hashes {
            let stored = tokens.get(hash)?.ok_or_else(|| {
                DirectoryError::Corrupt(format!("token {token_id} is listed but not stored"))
            })?;
            listed.push(decode(stored.value())?);
        }
        Ok(listed)
    }

    /// Issues a new token for member `member_id` of the caller's organisation.
    pub fn create_token(
        &self,
        caller: &Caller,
        member_id: &str,
    ) -> Result<IssuedToken, DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            change.issue_token(member_id)
        })
    }

    /// Revokes token `token_id` of member `member_id` of the caller's organisation.
    pub fn revoke_token(
        &self,
        caller: &Caller,
        member_id: &str,
        token_id: &str,
    ) -> Result<(), DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        let token_id = validate::id("token_id", token_id)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            member_in(&change.txn.open_table(MEMBERS)?, change.org_id, member_id)?;
            let hash = change
                .txn
                .open_table(MEMBER_TOKENS)?
                .remove((change.org_id, member_id, token_id))?
                .map(|hash| hash.value())
                .ok_or_else(|| DirectoryError::TokenNotFound(token_id.to_owned()))?;
            change.txn.open_table(TOKENS)?.remove(hash)?;
            change.record(
                AuditAction::TokenRevoked,
                token_id,
                format!("revoked token {token_id} of member {member_id}"),
            )
        })
    }
}

impl Change<'_> {
    /// Issues a token for an existing member of this change's organisation.
    pub(super) fn issue_token(&self, member_id: &str) -> Result<IssuedToken, DirectoryError> {
        member_in(&self.txn.open_table(MEMBERS)?, self.org_id, member_id)?;
        let mut member_tokens = self.txn.open_table(MEMBER_TOKENS)?;
        if token_hashes(&member_tokens, self.org_id, member_id)?.len() >= TOKENS_PER_MEMBER_MAX {
            return Err(DirectoryError::TokenLimit {
                member_id: member_id.to_owned(),
                max: TOKENS_PER_MEMBER_MAX,
            });
        }
        let secret = TokenSecret::generate();
        let token = Token {
            id: new_id("tok_"),
            org_id: self.org_id.to_owned(),
            member_id: member_id.to_owned(),
            created_at_ms: self.at_ms,
        };
        let hash = hash(secret.expose());
        member_tokens.insert((self.org_id, member_id, token.id.as_str()), hash)?;
        if self
            .txn
            .open_table(TOKENS)?
            .insert(hash, encode(&token)?.as_slice())?
            .is_some()
        {
            return Err(DirectoryError::Corrupt("token hash collision".to_owned()));
        }
        self.record(
            AuditAction::TokenCreated,
            &token.id,
            format!("issued token {} for member {member_id}", token.id),
        )?;
        Ok(IssuedToken { token, secret })
    }

    /// Revokes every token of a member (who is being removed); returns how many.
    pub(super) fn revoke_all_tokens(&self, member_id: &str) -> Result<usize, DirectoryError> {
        let mut member_tokens = self.txn.open_table(MEMBER_TOKENS)?;
        let hashes = token_hashes(&member_tokens, self.org_id, member_id)?;
        let mut tokens = self.txn.open_table(TOKENS)?;
        for (token_id, hash) in &hashes {
            member_tokens.remove((self.org_id, member_id, token_id.as_str()))?;
            tokens.remove(hash)?;
        }
        Ok(hashes.len())
    }
}

/// (token id, hash) of every token of member `member_id` of `org_id`, by token id.
fn token_hashes(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), [u8; 32]>,
    org_id: &str,
    member_id: &str,
) -> Result<Vec<(String, [u8; 32])>, DirectoryError> {
    let mut hashes = Vec::new();
    for entry in table.range((org_id, member_id, "")..)? {
        let (key, hash) = entry?;
        let (org, member, token_id) = key.value();
        if (org, member) != (org_id, member_id) {
            break;
        }
        hashes.push((token_id.to_owned(), hash.value()));
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_well_formed_and_distinct() {
        let (a, b) = (TokenSecret::generate(), TokenSecret::generate());
        assert!(is_well_formed(a.expose()) && is_well_formed(b.expose()));
        assert_ne!(a, b);
        assert_ne!(hash(a.expose()), hash(b.expose()));
        assert_eq!(format!("{a:?}"), "TokenSecret(..)");
    }

    #[test]
    fn anything_else_is_malformed() {
        let digits = "ab".repeat(TOKEN_SECRET_BYTES);
        for presented in [
            "",
            "slt_",
            &digits,
            &format!("slt_{}", &digits[1..]),
            &format!("slt_{digits}0"),
            &format!("slt_{}", digits.to_uppercase()),
            &format!("xyz_{digits}"),
        ] {
            assert!(!is_well_formed(presented), "{presented}");
        }
        assert!(is_well_formed(&format!("slt_{digits}")));
    }
}
