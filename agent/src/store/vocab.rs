//! The proto vocabulary as SQL values: verbs and states are bound as parameters and read back
//! typed, so no verb or state string is written inside SQL text. A column holding a value the
//! vocabulary does not know is a decode error.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::proto::{CampaignState, JobState, Verb};

macro_rules! sql_vocabulary {
    ($($ty:ident),*) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                $ty::parse(s).ok_or_else(|| {
                    FromSqlError::Other(
                        format!(concat!("unknown ", stringify!($ty), " {:?}"), s).into(),
                    )
                })
            }
        }
    )*};
}

sql_vocabulary!(Verb, JobState, CampaignState);

/// The final job states as a JSON array, for `state IN (SELECT value FROM json_each(?))`.
pub(crate) fn final_job_states() -> String {
    let names: Vec<&str> = JobState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    serde_json::to_string(&names).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn values_round_trip_and_unknown_ones_are_decode_errors() {
        let c = Connection::open_in_memory().unwrap();
        for v in Verb::ALL {
            let back: Verb = c.query_row("SELECT ?1", [v], |r| r.get(0)).unwrap();
            assert_eq!(back, *v);
        }
        for s in JobState::ALL {
            let back: JobState = c.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
        }
        for s in CampaignState::ALL {
            let back: CampaignState = c.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
        }
        assert!(
            c.query_row("SELECT 'nonsense'", [], |r| r.get::<_, JobState>(0))
                .is_err()
        );
        assert!(
            c.query_row("SELECT 'nonsense'", [], |r| r.get::<_, Verb>(0))
                .is_err()
        );
        assert_eq!(
            final_job_states(),
            r#"["sent","delivered","failed","expired","cancelled","unknown","done"]"#
        );
    }
}
