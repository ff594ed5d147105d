//! The writer's statements: each one taken from rusqlite's statement cache at its first use and
//! then held, reset between uses, from one commit to the next (`BEGIN` and `COMMIT` too), instead
//! of taken out and put back for every change.
//!
//! Why: taking a statement from the cache and putting it back cost ~1.8k instructions each time
//! (the SQL trimmed, copied into a new `Arc<str>` key and hashed on the way out, hashed again
//! and linked into the LRU list on the way back, its bindings cleared), about as much as
//! SQLite's own work for a short statement; a pair took eight when each of its two requests had
//! a commit of its own (its three statements, the cursor's, and `BEGIN` and `COMMIT` twice).
//! The writer puts them all back (drops this) before anything that needs the connection to
//! itself: the engine's rebuild after a failed commit (`writer.rs`).

use rusqlite::{CachedStatement, Connection};

pub struct Statements<'c> {
    pub conn: &'c Connection,
    /// Taken out of the cache, by SQL text; put back when this is dropped.
    held: Vec<(&'static str, CachedStatement<'c>)>,
}

impl<'c> Statements<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            held: Vec::new(),
        }
    }

    /// The statement for `sql`, prepared (or taken from the cache) at its first use. Compared
    /// by text, not address: the same SQL written at two places must not
    /// miss the cache because the first copy is held here.
    pub fn get(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'c>> {
        let i = match self.held.iter().position(|(held, _)| *held == sql) {
            Some(i) => i,
            None => {
                self.held.push((sql, self.conn.prepare_cached(sql)?));
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_taken_once_and_reused_with_new_values() {
        let conn = Connection::open_in_memory().expect("connection");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .expect("table");
        let insert = "INSERT INTO t (k, v) VALUES (?1, ?2)";
        {
            let mut st = Statements::new(&conn);
            for k in 0..3 {
                st.get(insert)
                    .and_then(|s| s.execute(rusqlite::params![k, format!("v{k}")]))
                    .expect("insert");
            }
            assert_eq!(st.held.len(), 1, "one statement for the three inserts");
        }
        let rows: String = conn
            .query_row("SELECT group_concat(v, ',') FROM t ORDER BY k", [], |r| {
                r.get(0)
            })
            .expect("rows");
        assert_eq!(rows, "v0,v1,v2");
        // Held across transactions, one of them rolled back.
        let mut st = Statements::new(&conn);
        for (k, end) in [(3, "ROLLBACK"), (4, "COMMIT")] {
            st.get("BEGIN").and_then(|s| s.execute([])).expect("begin");
            st.get(insert)
                .and_then(|s| s.execute(rusqlite::params![k, format!("v{k}")]))
                .expect("insert");
            st.get(end).and_then(|s| s.execute([])).expect("end");
        }
        drop(st);
        let count: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE k IN (3, 4)", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            count, 1,
            "the rolled-back insert is gone, the committed one kept"
        );
        // Back in the cache once dropped: usable again.
        Statements::new(&conn)
            .get(insert)
            .and_then(|s| s.execute(rusqlite::params![9, "v9"]))
            .expect("reused after the commit");
    }
}
