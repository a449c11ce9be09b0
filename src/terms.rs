//! The terms of a text as gim's full-text index holds them, the same for SQLite FTS5
//! and MySQL/MariaDB FULLTEXT, so that both stores find the same messages: words of
//! alphabetic scripts, lowercased; and for Chinese, Japanese and Korean, which do not
//! put spaces between words, every character and every pair of neighbouring characters
//! (a query of two or more such characters looks for its pairs, so that any substring
//! is found). Each term is wrapped in `x…x`: no term is then shorter than InnoDB's
//! minimum token size (3) or one of either engine's stopwords, and every term is one
//! token to both engines' tokenizers.
//!
//! Beside its words, a message's terms say who may see it (`seen_by_user`,
//! `seen_by_group`), so that the engine itself narrows a search to the user's
//! conversations: a common word among a million messages then costs the engine a merge
//! of two term lists, not a million-row check in SQL.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// Longer words are cut: nobody searches for the 41st letter of a word.
const MAX_WORD_CHARS: usize = 40;

fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x1100..=0x11FF          // Hangul Jamo
            | 0x3040..=0x30FF    // Hiragana, Katakana
            | 0x3130..=0x318F    // Hangul compatibility Jamo
            | 0x31F0..=0x31FF    // Katakana extensions
            | 0x3400..=0x4DBF    // Han extension A
            | 0x4E00..=0x9FFF    // Han
            | 0xAC00..=0xD7AF    // Hangul syllables
            | 0xF900..=0xFAFF    // Han compatibility
            | 0xFF66..=0xFF9F    // half-width Katakana
            | 0x20000..=0x2FA1F // Han extensions B-F
    )
}

/// How a run of CJK characters becomes terms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// In the index: every character and every pair.
    Index,
    /// In a query: the pairs (a lone character: itself).
    Query,
}

fn collect(text: &str, mode: Use) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    let (mut word, mut run) = (String::new(), Vec::<char>::new());
    let flush_word = |word: &mut String, terms: &mut BTreeSet<String>| {
        if !word.is_empty() {
            let cut: String = word.chars().take(MAX_WORD_CHARS).collect();
            terms.insert(format!("x{cut}x"));
            word.clear();
        }
    };
    let flush_run = |run: &mut Vec<char>, terms: &mut BTreeSet<String>| {
        if run.len() == 1 || (mode == Use::Index && !run.is_empty()) {
            terms.extend(run.iter().map(|c| format!("x{c}x")));
        }
        terms.extend(run.windows(2).map(|pair| format!("x{}{}x", pair[0], pair[1])));
        run.clear();
    };
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_cjk(c) {
            flush_word(&mut word, &mut terms);
            run.push(c);
        } else if c.is_alphanumeric() {
            flush_run(&mut run, &mut terms);
            word.push(c);
        } else {
            flush_word(&mut word, &mut terms);
            flush_run(&mut run, &mut terms);
        }
    }
    flush_word(&mut word, &mut terms);
    flush_run(&mut run, &mut terms);
    terms
}

/// A term no word can be: `x`, a kind letter, 16 hex digits of a hash scoped by app, `x`.
fn hashed(kind: char, app: u64, id: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{app}:{id}"));
    let hex: String = digest[..8].iter().map(|byte| format!("{byte:02x}")).collect();
    format!("x{kind}{hex}x")
}

/// Held by a message a user of its direct conversation may find.
pub fn seen_by_user(app: u64, user: &str) -> String {
    hashed('u', app, user)
}

/// Held by a message the members of its group may find.
pub fn seen_by_group(app: u64, group: &str) -> String {
    hashed('g', app, group)
}

/// What the index holds for a text, space-separated.
pub fn indexed(text: &str) -> String {
    collect(text, Use::Index).into_iter().collect::<Vec<_>>().join(" ")
}

/// The terms a message must hold to match a query (all of them).
pub fn query(text: &str) -> Vec<String> {
    collect(text, Use::Query).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_wrapped_and_punctuation_splits_them() {
        assert_eq!(indexed("Hello, World! it's 2026"), "x2026x xhellox xitx xsx xworldx");
        assert_eq!(query("hello   WORLD"), ["xhellox", "xworldx"]);
        assert_eq!(query(" ,.!? "), Vec::<String>::new());
    }

    #[test]
    fn cjk_text_is_indexed_by_characters_and_pairs_and_queried_by_pairs() {
        assert_eq!(indexed("你好吗"), "x你x x你好x x吗x x好x x好吗x");
        assert_eq!(query("你好"), ["x你好x"]);
        assert_eq!(query("好"), ["x好x"]);
        // Every query term of a substring is among the text's terms.
        let text = indexed("明天下午三点开会 meeting at 3pm");
        for needle in ["下午三点", "开会", "会", "meeting", "3pm"] {
            for term in query(needle) {
                assert!(text.split(' ').any(|t| t == term), "{needle}: {term} in {text}");
            }
        }
        assert_eq!(query("東京タワー"), ["xタワx", "xワーx", "x京タx", "x東京x"]);
        assert_eq!(query("안녕하세요"), ["x녕하x", "x세요x", "x안녕x", "x하세x"]);
    }

    #[test]
    fn who_may_see_a_message_is_a_term_of_its_own_per_app() {
        let alice = seen_by_user(1, "alice");
        assert_eq!(alice.len(), 19);
        assert!(alice.starts_with("xu") && alice.ends_with('x'));
        assert_eq!(alice, seen_by_user(1, "alice"), "stable");
        assert_ne!(alice, seen_by_user(2, "alice"), "another app's alice is another term");
        assert_ne!(seen_by_group(1, "alice"), alice);
        // Typed into a query, such a term is wrapped again: nobody can search as another.
        assert_eq!(query(&alice), [format!("x{alice}x")]);
    }

    #[test]
    fn long_words_are_cut() {
        let long = "a".repeat(100);
        assert_eq!(indexed(&long), format!("x{}x", "a".repeat(MAX_WORD_CHARS)));
    }
}
