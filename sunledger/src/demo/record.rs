//! What the demo remembers between starts: which organisation, Admin, plans and API token it
//! created, so a restart on the same database finds them instead of seeding a second copy.
//!
//! The record is one row of its own table (`demo_seed`) in the platform's redb file rather
//! than a file beside it: it then lives and dies with the database it describes (moving,
//! copying or deleting the `--database` file takes it along, and two databases in one
//! directory cannot share it), needs no path derived from the database's, and holds no
//! secret, so there are no file permissions to get right. Tokens are stored only hashed by
//! the directory, so the record keeps the token's id (to revoke it), never the token.
//!
//! The directory commits the organisation and plans in its own transactions before this row
//! is written; a crash in between leaves an organisation nobody remembers, with no units yet,
//! and the next start seeds a fresh one.

use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use sunledger_billing::store::Store;

/// Key [`RECORD_KEY`] → the demo's [`DemoRecord`] as JSON, readable with any redb viewer.
const DEMO_SEED: TableDefinition<&str, &str> = TableDefinition::new("demo_seed");
/// The table's one key.
const RECORD_KEY: &str = "demo";

/// The directory records the demo seeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoRecord {
    /// The demo organisation, found again by id on every start.
    pub org_id: String,
    /// Its first Admin, who acts for the demo (registrations, payments, tokens).
    pub admin_member_id: String,
    /// The usage plan demo units are installed on.
    pub usage_plan_id: String,
    /// The current demo Admin token, revoked when the next start issues a fresh one.
    pub token_id: String,
}

/// The demo's record in `store`'s file, if a demo ever seeded it.
pub fn load(store: &Store) -> anyhow::Result<Option<DemoRecord>> {
    let txn = store.database()?.begin_read()?;
    let table = match txn.open_table(DEMO_SEED) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Some(stored) = table.get(RECORD_KEY)? else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(stored.value())?))
}

/// Stores `record` as the demo's, durably, replacing any earlier one.
pub fn save(store: &Store, record: &DemoRecord) -> anyhow::Result<()> {
    let json = serde_json::to_string(record)?;
    let txn = store.begin_write()?;
    txn.open_table(DEMO_SEED)?
        .insert(RECORD_KEY, json.as_str())?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_is_loaded_back_and_replaced_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("demo.redb")).unwrap();
        assert_eq!(load(&store).unwrap(), None);
        let mut record = DemoRecord {
            org_id: "org_1".into(),
            admin_member_id: "mem_1".into(),
            usage_plan_id: "plan_1".into(),
            token_id: "tok_1".into(),
        };
        save(&store, &record).unwrap();
        assert_eq!(load(&store).unwrap().as_ref(), Some(&record));
        record.token_id = "tok_2".into();
        save(&store, &record).unwrap();
        assert_eq!(load(&store).unwrap(), Some(record));
    }
}
