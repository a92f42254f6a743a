//! What a progress mark means: each is stored under its stage and the options that decide what
//! it stands for (`<stage>#<meaning>`, declared by the stage when built; see `resume`), and a run
//! whose stages declare other meanings than the stored ones is refused.

use crate::kafka::KafkaError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A mark's key in the topic: the stage, then `#` and the meaning it declared, if any (component
/// ids have no `#`).
pub(super) fn stored_key(stage: &str, meaning: Option<&str>) -> String {
    match meaning {
        Some(meaning) => format!("{stage}#{meaning}"),
        None => stage.to_string(),
    }
}

/// `marks` by the keys they are stored under: each with the meaning its stage declared.
pub(super) fn stored_marks(
    meanings: &BTreeMap<String, String>,
    marks: BTreeMap<Arc<str>, i64>,
) -> Vec<(String, i64)> {
    marks
        .into_iter()
        .map(|(stage, through)| {
            let meaning = meanings.get(&*stage).map(String::as_str);
            (stored_key(&stage, meaning), through)
        })
        .collect()
}

/// Refuses to go on from marks stored with another meaning than the one their stage now
/// declares (an edited window size, a csv source reading another file).
pub(super) fn check_meanings(
    declared: &BTreeMap<String, String>,
    stored: &BTreeMap<String, Vec<String>>,
    topic: &str,
) -> Result<(), KafkaError> {
    for (stage, now) in declared {
        let Some(before) = stored.get(stage) else {
            continue;
        };
        if let Some(other) = before.iter().find(|m| *m != now) {
            return Err(KafkaError::ProgressMeaning {
                stage: stage.clone(),
                topic: topic.to_string(),
                before: other.clone(),
                now: now.clone(),
            });
        }
    }
    Ok(())
}

/// The committed marks by stage, and every meaning each stage's marks were stored with (none for
/// marks of versions before meanings).
pub(super) fn by_stage(
    stored: &BTreeMap<String, i64>,
) -> (BTreeMap<String, i64>, BTreeMap<String, Vec<String>>) {
    let mut marks = BTreeMap::new();
    let mut meanings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, through) in stored {
        let (stage, meaning) = match key.split_once('#') {
            Some((stage, meaning)) => (stage, Some(meaning)),
            None => (key.as_str(), None),
        };
        let at = marks.entry(stage.to_string()).or_insert(*through);
        *at = (*at).max(*through);
        if let Some(meaning) = meaning {
            meanings
                .entry(stage.to_string())
                .or_default()
                .push(meaning.to_string());
        }
    }
    (marks, meanings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_carry_the_meaning_and_split_by_stage() {
        let mut stored = BTreeMap::new();
        stored.insert(stored_key("transforms.w", Some("size=1000ms")), 7);
        stored.insert(stored_key("transforms.w", None), 9);
        stored.insert(stored_key("sources.csv@start_time", None), -2);
        let (marks, meanings) = by_stage(&stored);
        assert_eq!(marks.get("transforms.w"), Some(&9));
        assert_eq!(marks.get("sources.csv@start_time"), Some(&-2));
        assert_eq!(
            meanings.get("transforms.w"),
            Some(&vec!["size=1000ms".to_string()])
        );
        assert_eq!(meanings.get("sources.csv@start_time"), None);
    }
}
