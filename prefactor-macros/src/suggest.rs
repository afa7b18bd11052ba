//! "Did you mean" hints for misspelled option names.

/// The candidate closest to `written` if it is plausibly a typo of it.
pub(crate) fn closest<'a>(written: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(written, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b_chars.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_a_near_miss_and_nothing_for_a_far_one() {
        let names = ["schema", "skip", "skip_all", "title"];
        assert_eq!(closest("shema", &names), Some("schema"));
        assert_eq!(closest("skipall", &names), Some("skip_all"));
        assert_eq!(closest("zzzzzzzz", &names), None);
    }
}
