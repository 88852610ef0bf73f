//! The OFAC SDN list, held in PostgreSQL so every pod screens against the same version.
//!
//! A load inserts the new list beside the old one, makes it the active one and deletes
//! the old rows, all in one transaction: readers see the old list or the new one, never
//! half of either. The `sanctions_lists` rows stay as the history of loads.

use std::collections::HashMap;
use std::fmt;

use super::{Store, StoreError};
use dossier_sanctions::{ListVersion, SdnAddress, SdnAlias, SdnEntry, SdnKind, SdnList, Vessel};

/// Rows per INSERT … SELECT FROM UNNEST(…).
const BATCH: usize = 5_000;

/// What a load stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSummary {
    /// The new active list's id (its version).
    pub list_id: i64,
    pub entries: usize,
    pub aliases: usize,
    pub addresses: usize,
    /// Rows of the files skipped as malformed.
    pub skipped_rows: usize,
    pub sha256: String,
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sanctions list {} is active: {} entries, {} aliases, {} addresses",
            self.list_id, self.entries, self.aliases, self.addresses
        )?;
        if self.skipped_rows > 0 {
            write!(
                f,
                "; {} malformed rows skipped (see the warnings logged)",
                self.skipped_rows
            )?;
        }
        write!(
            f,
            " (sha256 {})",
            self.sha256.get(..12).unwrap_or(&self.sha256)
        )
    }
}

/// Column arrays of a batch of `sanctions_entries` rows.
#[derive(Default)]
struct NameRows {
    ent_num: Vec<i64>,
    alt_num: Vec<i64>,
    is_alias: Vec<bool>,
    name: Vec<String>,
    kind: Vec<String>,
    program: Vec<String>,
    alt_type: Vec<String>,
    title: Vec<String>,
    remarks: Vec<String>,
    /// JSON text, or empty for none.
    vessel: Vec<String>,
}

impl NameRows {
    fn len(&self) -> usize {
        self.ent_num.len()
    }
}

#[derive(Default)]
struct AddressRows {
    ent_num: Vec<i64>,
    add_num: Vec<i64>,
    address: Vec<String>,
    city: Vec<String>,
    country: Vec<String>,
    remarks: Vec<String>,
}

impl Store {
    /// Makes `list` the active sanctions list, in one transaction: inserts its rows,
    /// flips `active`, deletes the previous lists' rows. Concurrent loads run one after
    /// the other. Refuses an empty list.
    pub async fn replace_sanctions_list(
        &self,
        list: &SdnList,
        source: &str,
    ) -> Result<LoadSummary, StoreError> {
        if list.entries.is_empty() {
            return Err(StoreError::Corrupt(
                "refusing to replace the sanctions list with an empty one".to_owned(),
            ));
        }
        let summary = |list_id| LoadSummary {
            list_id,
            entries: list.entries.len(),
            aliases: list.alias_count(),
            addresses: list.address_count(),
            skipped_rows: list.skipped_rows,
            sha256: list.sha256.clone(),
        };
        let counts = summary(0);
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        // One loader at a time; plain reads (ACCESS SHARE) are not blocked.
        sqlx::query!("LOCK TABLE sanctions_lists IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let list_id = sqlx::query_scalar!(
            "INSERT INTO sanctions_lists (source, entries, aliases, addresses, skipped_rows, sha256)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id",
            source,
            counts.entries as i32,
            counts.aliases as i32,
            counts.addresses as i32,
            counts.skipped_rows as i32,
            &list.sha256,
        )
        .fetch_one(&mut *tx)
        .await?;

        let mut names = NameRows::default();
        let mut addresses = AddressRows::default();
        for e in &list.entries {
            let vessel = match &e.vessel {
                Some(v) => serde_json::to_string(v).map_err(|err| {
                    StoreError::Corrupt(format!("vessel of {}: {err}", e.ent_num))
                })?,
                None => String::new(),
            };
            push_name(&mut names, e, 0, false, &e.name, "", &e.remarks, vessel);
            for a in &e.aliases {
                push_name(
                    &mut names,
                    e,
                    a.alt_num,
                    true,
                    &a.name,
                    &a.alt_type,
                    &a.remarks,
                    String::new(),
                );
            }
            if names.len() >= BATCH {
                insert_names(&mut tx, list_id, std::mem::take(&mut names)).await?;
            }
            for a in &e.addresses {
                addresses.ent_num.push(e.ent_num);
                addresses.add_num.push(a.add_num);
                addresses.address.push(a.address.clone());
                addresses.city.push(a.city.clone());
                addresses.country.push(a.country.clone());
                addresses.remarks.push(a.remarks.clone());
            }
            if addresses.ent_num.len() >= BATCH {
                insert_addresses(&mut tx, list_id, std::mem::take(&mut addresses)).await?;
            }
        }
        if !names.ent_num.is_empty() {
            insert_names(&mut tx, list_id, names).await?;
        }
        if !addresses.ent_num.is_empty() {
            insert_addresses(&mut tx, list_id, addresses).await?;
        }

        // Two statements: a unique index is checked row by row, not at statement end.
        sqlx::query!("UPDATE sanctions_lists SET active = false WHERE active")
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "UPDATE sanctions_lists SET active = true WHERE id = $1",
            list_id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM sanctions_entries WHERE list_id <> $1", list_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "DELETE FROM sanctions_addresses WHERE list_id <> $1",
            list_id
        )
        .execute(&mut *tx)
        .await?;
        // Ongoing monitoring: one job for the fleet screens the approved applications
        // against this version (crates/service/src/underwriting/monitoring.rs).
        sqlx::query!(
            "INSERT INTO jobs (kind, sanctions_list_id) VALUES ('monitor_sanctions', $1)",
            list_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(summary(list_id))
    }

    /// The active list's id (its version), if a list was ever loaded.
    pub async fn active_sanctions_version(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar!("SELECT id FROM sanctions_lists WHERE active")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The active list, whole, read from one snapshot (a load committing meanwhile is
    /// not seen).
    pub async fn load_active_sanctions(&self) -> Result<Option<SdnList>, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(head) = sqlx::query!(
            "SELECT id, loaded_at, source, skipped_rows, sha256 FROM sanctions_lists WHERE active",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let list_id = head.id;
        let rows = sqlx::query!(
            "SELECT ent_num, alt_num, is_alias, name, kind, program, alt_type, title, remarks,
                    vessel::text AS vessel
             FROM sanctions_entries WHERE list_id = $1
             ORDER BY ent_num, is_alias, alt_num",
            list_id,
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut entries: Vec<SdnEntry> = Vec::new();
        let mut index: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let ent_num = row.ent_num;
            let name = row.name;
            let remarks = row.remarks;
            if row.is_alias {
                let Some(&at) = index.get(&ent_num) else {
                    return Err(StoreError::Corrupt(format!(
                        "sanctions list {list_id}: alias of entry {ent_num} without the entry"
                    )));
                };
                entries[at].aliases.push(SdnAlias {
                    alt_num: row.alt_num,
                    alt_type: row.alt_type,
                    name,
                    remarks,
                });
                continue;
            }
            let kind = row.kind;
            let kind = SdnKind::parse(&kind).ok_or_else(|| {
                StoreError::Corrupt(format!("sanctions entry {ent_num} has kind {kind:?}"))
            })?;
            let vessel = match row.vessel {
                Some(json) => Some(serde_json::from_str::<Vessel>(&json).map_err(|e| {
                    StoreError::Corrupt(format!("vessel of sanctions entry {ent_num}: {e}"))
                })?),
                None => None,
            };
            index.insert(ent_num, entries.len());
            entries.push(SdnEntry {
                ent_num,
                name,
                kind,
                program: row.program,
                title: row.title,
                vessel,
                remarks,
                aliases: Vec::new(),
                addresses: Vec::new(),
            });
        }
        let rows = sqlx::query!(
            "SELECT ent_num, add_num, address, city, country, remarks
             FROM sanctions_addresses WHERE list_id = $1 ORDER BY ent_num, add_num",
            list_id,
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let ent_num = row.ent_num;
            let Some(&at) = index.get(&ent_num) else {
                return Err(StoreError::Corrupt(format!(
                    "sanctions list {list_id}: address of entry {ent_num} without the entry"
                )));
            };
            entries[at].addresses.push(SdnAddress {
                add_num: row.add_num,
                address: row.address,
                city: row.city,
                country: row.country,
                remarks: row.remarks,
            });
        }
        tx.commit().await?;
        Ok(Some(SdnList {
            entries,
            skipped_rows: head.skipped_rows.max(0) as usize,
            sha256: head.sha256,
            warnings: Vec::new(),
            stored: Some(ListVersion {
                id: list_id,
                loaded_at: head.loaded_at,
                source: head.source,
            }),
        }))
    }
}

#[allow(clippy::too_many_arguments)]
fn push_name(
    rows: &mut NameRows,
    e: &SdnEntry,
    alt_num: i64,
    is_alias: bool,
    name: &str,
    alt_type: &str,
    remarks: &str,
    vessel: String,
) {
    rows.ent_num.push(e.ent_num);
    rows.alt_num.push(alt_num);
    rows.is_alias.push(is_alias);
    rows.name.push(name.to_owned());
    rows.kind.push(e.kind.as_str().to_owned());
    rows.program.push(e.program.clone());
    rows.alt_type.push(alt_type.to_owned());
    rows.title.push(if is_alias {
        String::new()
    } else {
        e.title.clone()
    });
    rows.remarks.push(remarks.to_owned());
    rows.vessel.push(vessel);
}

async fn insert_names(
    tx: &mut sqlx::PgConnection,
    list_id: i64,
    rows: NameRows,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO sanctions_entries
             (list_id, ent_num, alt_num, is_alias, name, kind, program, alt_type, title, remarks, vessel)
         SELECT $1, t.ent_num, t.alt_num, t.is_alias, t.name, t.kind, t.program, t.alt_type,
                t.title, t.remarks, NULLIF(t.vessel, '')::jsonb
         FROM UNNEST($2::bigint[], $3::bigint[], $4::boolean[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
              AS t(ent_num, alt_num, is_alias, name, kind, program, alt_type, title, remarks, vessel)",
        list_id,
        &rows.ent_num,
        &rows.alt_num,
        &rows.is_alias,
        &rows.name,
        &rows.kind,
        &rows.program,
        &rows.alt_type,
        &rows.title,
        &rows.remarks,
        &rows.vessel,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_addresses(
    tx: &mut sqlx::PgConnection,
    list_id: i64,
    rows: AddressRows,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO sanctions_addresses (list_id, ent_num, add_num, address, city, country, remarks)
         SELECT $1, t.ent_num, t.add_num, t.address, t.city, t.country, t.remarks
         FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
              AS t(ent_num, add_num, address, city, country, remarks)",
        list_id,
        &rows.ent_num,
        &rows.add_num,
        &rows.address,
        &rows.city,
        &rows.country,
        &rows.remarks,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LoadSummary;

    #[test]
    fn sanctions_summary_is_one_line() {
        let s = LoadSummary {
            list_id: 7,
            entries: 18_000,
            aliases: 21_000,
            addresses: 15_000,
            skipped_rows: 2,
            sha256: "0123456789abcdef".repeat(4),
        };
        let text = s.to_string();
        assert!(!text.contains('\n'));
        assert_eq!(
            text,
            "sanctions list 7 is active: 18000 entries, 21000 aliases, 15000 addresses; \
             2 malformed rows skipped (see the warnings logged) (sha256 0123456789ab)"
        );
    }
}
