//! Opening the database file: pragmas, damage detection, moving a damaged file aside, and
//! the versioned schema (`PRAGMA user_version`, one migration per version).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::error::{StoreAlarm, StoreError};

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema.
    "CREATE TABLE outbox(
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        class INTEGER NOT NULL,
        payload BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    -- oldest-first eviction of telemetry
    CREATE INDEX outbox_class_seq ON outbox(class, seq);
    CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters(name, value) VALUES ('next_seq', 1), ('dropped_telemetry', 0);
    CREATE TABLE jobs(
        job_id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        verb TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        slot INTEGER,
        outcome TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX jobs_state ON jobs(state, job_id);
    CREATE TABLE sms_parts(
        slot INTEGER NOT NULL,
        sender TEXT NOT NULL,
        reference INTEGER NOT NULL,
        total INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        part_json TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        PRIMARY KEY(slot, sender, reference, total, seq)
    ) WITHOUT ROWID;",
    // 1 → 2: fingerprints of received messages and parts already turned into events, so a
    // message read again after a crash (committed, not yet deleted from the SIM) is not
    // published twice.
    "CREATE TABLE sms_seen(
        fingerprint TEXT PRIMARY KEY,
        seen_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sms_seen_ms ON sms_seen(seen_ms);",
    // 2 → 3: the send queue (priority, not-before, campaign) and campaigns.
    "ALTER TABLE jobs ADD COLUMN campaign_id TEXT;
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_queue ON jobs(state, priority DESC, job_id);
    CREATE INDEX jobs_campaign ON jobs(campaign_id, state);
    CREATE TABLE campaigns(
        campaign_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL,
        state TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 3 → 4: the console's failed-login guard (one row), so a restart does not reset a lockout.
    "CREATE TABLE console_auth(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        failures INTEGER NOT NULL,
        lockouts INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL
    );",
];

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why opening failed.
enum OpenFailure {
    /// The file is damaged: move it aside.
    Damaged(String),
    /// Anything else: report it.
    Other(StoreError),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                OpenFailure::Damaged(e.to_string())
            }
            _ => OpenFailure::Other(e.into()),
        }
    }
}

/// Opens (creating if needed) the writer's connection, checked and migrated; a damaged file is
/// moved aside and replaced by a fresh one, reported as an alarm.
pub(crate) fn open_writer(path: &Path) -> Result<(Connection, Vec<StoreAlarm>), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private::create_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    }
    make_private(path)?;
    let mut alarms = Vec::new();
    match try_open(path) {
        Ok(conn) => return Ok((conn, alarms)),
        Err(OpenFailure::Other(e)) => return Err(e),
        Err(OpenFailure::Damaged(reason)) => {
            let aside = move_aside(path)?;
            tracing::error!(path = %path.display(), aside = %aside.display(), %reason,
                "store database damaged; moved aside, starting empty");
            alarms.push(StoreAlarm::MovedAsideCorrupt {
                path: aside,
                reason,
            });
        }
    }
    make_private(path)?;
    match try_open(path) {
        Ok(conn) => Ok((conn, alarms)),
        Err(OpenFailure::Other(e)) => Err(e),
        Err(OpenFailure::Damaged(reason)) => Err(StoreError::Corrupt(format!(
            "fresh database is damaged too: {reason}"
        ))),
    }
}

/// The database is created 0600 before SQLite opens it (SQLite gives its -wal and -shm the
/// database's mode); files an older version left 0644 are tightened.
fn make_private(path: &Path) -> Result<(), StoreError> {
    crate::private::create_file(path).map_err(|e| StoreError::io(path, e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let p = suffixed(path, suffix);
        if let Err(e) = crate::private::tighten_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "cannot make the file private");
        }
    }
    Ok(())
}

/// Opens a reader connection on an existing database.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA query_only=ON;")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn try_open(path: &Path) -> Result<Connection, OpenFailure> {
    // Judge the header before SQLite opens the file: on a file that is not a WAL database it
    // would delete a -wal beside it, and that is evidence to keep.
    if let Some(reason) = bad_header(path).map_err(OpenFailure::Other)? {
        return Err(OpenFailure::Damaged(reason));
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Takes effect on a new file (before its first table); an older file is converted below.
    conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenFailure::Other(StoreError::Sqlite(format!(
            "could not switch to WAL (journal_mode is {mode})"
        ))));
    }
    // journal_size_limit: after a checkpoint the WAL is cut back to 4 MiB, not left at its
    // peak (on a full disk the store also truncates it; see disk.rs).
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=4194304;",
    )?;
    let problems = quick_check(&conn)?;
    if !problems.is_empty() {
        return Err(OpenFailure::Damaged(format!(
            "quick_check: {}",
            problems.join("; ")
        )));
    }
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(OpenFailure::Other(StoreError::FutureSchema {
            found,
            known: SCHEMA_VERSION,
        }));
    }
    migrate(&conn, found)?;
    convert_to_incremental_vacuum(&conn, path);
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A file made before the store reclaimed space has `auto_vacuum` off: one VACUUM turns it
/// on (it needs about the file's size free again; without that room it waits for a later start).
fn convert_to_incremental_vacuum(conn: &Connection, path: &Path) {
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap_or(2);
    if mode == 2 {
        return;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let free = super::disk::free_bytes(dir).unwrap_or(0);
    if free < size.saturating_mul(2) + super::disk::RESERVE_BYTES * 2 {
        tracing::info!(
            size,
            free,
            "store file not converted to incremental vacuum: not enough room"
        );
        return;
    }
    match conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;") {
        Ok(()) => tracing::info!(size, "store file converted to incremental vacuum"),
        Err(e) => tracing::warn!(error = %e, "store file not converted to incremental vacuum"),
    }
}

/// Why the file's first 100 bytes are not an SQLite header, if they are not (an absent or
/// empty file is fine: it becomes a fresh database).
fn bad_header(path: &Path) -> Result<Option<String>, StoreError> {
    use std::io::Read;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut header = Vec::with_capacity(100);
    f.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| StoreError::io(path, e))?;
    Ok(match header.len() {
        0 => None,
        n if n < 100 => Some(format!("file too short for a database header ({n} bytes)")),
        _ if !header.starts_with(MAGIC) => Some("not an SQLite database (bad header)".into()),
        _ => None,
    })
}

/// `PRAGMA quick_check` findings (empty when the file is sound); first few only.
fn quick_check(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}

/// Applies the migrations after `from`, each in its own transaction with its version stamp.
fn migrate(conn: &Connection, from: i64) -> Result<(), rusqlite::Error> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        let to = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {to}; COMMIT;"
        ))
        .inspect_err(|_| {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        })?;
        tracing::info!(version = to, "store schema migrated");
    }
    Ok(())
}

/// Renames the database and its -wal/-shm to `<name>.corrupt-<unix ms>[-wal|-shm]`, keeping
/// them together so the damaged copy can still be opened for inspection.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let mut ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let target = loop {
        let candidate = suffixed(path, &format!(".corrupt-{ms}"));
        if !candidate.exists() {
            break candidate;
        }
        ms += 1;
    };
    for side in ["-wal", "-shm"] {
        let from = suffixed(path, side);
        if from.exists() {
            let to = suffixed(&target, side);
            std::fs::rename(&from, &to).map_err(|e| StoreError::io(&from, e))?;
        }
    }
    std::fs::rename(path, &target).map_err(|e| StoreError::io(path, e))?;
    Ok(target)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
