//! The progress marks of what a `postgres` sink writes, kept in a table of the same database
//! (`progress_table`, one row per job and stage: how far the stage had emitted, and what that
//! means) and written in the same transaction as the rows they cover. A restarted run loads them
//! before any stage handles a record, so a window skips the windows already in the table instead
//! of writing them again from the part of their input it reads twice (the source resumes from
//! offsets committed *after* the rows, which may lie inside an emitted window).

use crate::ack::Mark;
use crate::resume::Resumed;
use std::collections::BTreeMap;

/// A job's marks in one table.
pub struct ProgressTable {
    /// The quoted table name.
    pub table: String,
    /// The job whose rows these are.
    pub job: String,
}

/// A stored mark whose meaning differs from the one its stage now declares.
#[derive(Debug, PartialEq, Eq)]
pub struct OtherMeaning {
    /// The stage.
    pub stage: String,
    /// What the stored mark meant.
    pub before: String,
    /// What the stage declares now.
    pub now: String,
}

impl ProgressTable {
    /// Creates the table if it is not there.
    pub fn create(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (job text NOT NULL, stage text NOT NULL, meaning \
             text NOT NULL, through bigint NOT NULL, PRIMARY KEY (job, stage))",
            self.table
        )
    }

    /// Reads the job's marks: stage, meaning, through.
    pub fn select(&self) -> String {
        format!(
            "SELECT stage, meaning, through FROM {} WHERE job = $1",
            self.table
        )
    }

    /// Stores marks given as arrays of stages ($2), meanings ($3) and positions ($4).
    pub fn upsert(&self) -> String {
        format!(
            "INSERT INTO {} (job, stage, meaning, through) SELECT $1::text, s, m, t FROM \
             UNNEST($2::text[], $3::text[], $4::bigint[]) AS u(s, m, t) ON CONFLICT (job, stage) \
             DO UPDATE SET meaning = EXCLUDED.meaning, through = EXCLUDED.through",
            self.table
        )
    }

    /// The parameters of [`upsert`](Self::upsert) for `marks`, each with the meaning its stage
    /// declared.
    pub fn rows(
        marks: &[Mark],
        meanings: &BTreeMap<String, String>,
    ) -> (Vec<String>, Vec<String>, Vec<i64>) {
        let mut stages = Vec::with_capacity(marks.len());
        let mut kept = Vec::with_capacity(marks.len());
        let mut through = Vec::with_capacity(marks.len());
        for mark in marks {
            stages.push(mark.stage.to_string());
            kept.push(meanings.get(&*mark.stage).cloned().unwrap_or_default());
            through.push(mark.through);
        }
        (stages, kept, through)
    }
}

/// Hands the stored marks to the run's stages, unless one was made under another meaning than
/// its stage now declares (then nothing is handed over).
pub fn restore(resumed: &Resumed, stored: &[(String, String, i64)]) -> Result<usize, OtherMeaning> {
    let declared = resumed.meanings();
    for (stage, before, _) in stored {
        if let Some(now) = declared.get(stage)
            && now != before
        {
            return Err(OtherMeaning {
                stage: stage.clone(),
                before: before.clone(),
                now: now.clone(),
            });
        }
    }
    for (stage, _, through) in stored {
        resumed.restore(stage, *through);
    }
    Ok(stored.len())
}

/// The default job name of a pipeline: `weir.<pipeline file name>`, as for Kafka transactions.
pub fn default_job(pipeline: &str) -> String {
    format!("weir.{pipeline}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_made_under_another_meaning_are_refused_and_nothing_is_restored() {
        let resumed = Resumed::default();
        resumed.declare("transforms.w", "size=1000ms".into());
        let stored = vec![
            ("transforms.w".to_string(), "size=2000ms".to_string(), 5),
            ("transforms.v".to_string(), String::new(), 7),
        ];
        let refused = restore(&resumed, &stored).unwrap_err();
        assert_eq!(refused.before, "size=2000ms");
        assert_eq!(resumed.through("transforms.v"), None);
        let same = vec![("transforms.w".to_string(), "size=1000ms".to_string(), 5)];
        assert_eq!(restore(&resumed, &same), Ok(1));
        assert_eq!(resumed.through("transforms.w"), Some(5));
    }
}
