//! Who sees a post: decided here, for the feeds the store fills in.

use crate::model::Visibility;

/// Whether a new friend gets this post of the other's in its feed when they become
/// friends. A chosen audience was chosen among the author's friends of that time, so a
/// newcomer is not in it.
pub fn shown_to_new_friend(visibility: Visibility, audience: &[String], viewer: &str) -> bool {
    match visibility {
        Visibility::Public | Visibility::Friends => true,
        Visibility::Except => !audience.iter().any(|user| user == viewer),
        Visibility::Chosen | Visibility::OnlyMe | Visibility::Unspecified => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_friend_sees_what_friends_see_unless_left_out() {
        let except = vec!["bob".to_owned()];
        assert!(shown_to_new_friend(Visibility::Public, &[], "ann"));
        assert!(shown_to_new_friend(Visibility::Friends, &[], "ann"));
        assert!(shown_to_new_friend(Visibility::Except, &except, "ann"));
        assert!(!shown_to_new_friend(Visibility::Except, &except, "bob"));
        assert!(
            !shown_to_new_friend(Visibility::Chosen, &["ann".to_owned()], "ann"),
            "chosen before they were friends"
        );
        assert!(!shown_to_new_friend(Visibility::OnlyMe, &[], "ann"));
    }
}
