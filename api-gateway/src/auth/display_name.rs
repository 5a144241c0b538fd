//! [`DisplayName`]: the name other people see, separate from the login and the user id.

use shared::text::{TextError, TextRules};
use std::fmt;

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX_LEN: usize = 64;

/// Why a text is not a display name: the rules of all free text (`shared::text`).
pub type DisplayNameError = TextError;

/// A trimmed, non-empty name of at most 64 characters without control characters (which
/// would let one user's name rewrite another's line in a viewer's page or a log), by the one
/// set of text rules in `shared::text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    const RULES: TextRules = TextRules::line(DISPLAY_NAME_MAX_LEN);

    /// # Errors
    /// [`DisplayNameError`] naming the rule broken.
    pub fn parse(text: &str) -> Result<Self, DisplayNameError> {
        Self::RULES.apply(text).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(
            DisplayName::parse("  Ada L. ").map(|n| n.0),
            Ok("Ada L.".into())
        );
    }

    #[test]
    fn blank_name_is_rejected() {
        assert_eq!(DisplayName::parse(" \t"), Err(DisplayNameError::Empty));
    }

    #[test]
    fn name_of_sixty_five_characters_is_rejected() {
        assert_eq!(
            DisplayName::parse(&"é".repeat(65)),
            Err(DisplayNameError::TooLong { max: 64 })
        );
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn name_with_a_control_character_is_rejected() {
        assert_eq!(
            DisplayName::parse("Ada\u{1b}[2J"),
            Err(DisplayNameError::ControlCharacter {
                found: '\u{1b}',
                position: 4
            })
        );
    }
}
