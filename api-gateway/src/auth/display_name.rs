//! [`DisplayName`]: the name other people see, separate from the login and the user id.

use std::fmt;

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX_LEN: usize = 64;

/// Why a text is not a display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {DISPLAY_NAME_MAX_LEN} characters")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// A trimmed, non-empty name of at most 64 characters without control characters (which
/// would let one user's name rewrite another's line in a viewer's page or a log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// # Errors
    /// [`DisplayNameError`] naming the rule broken.
    pub fn parse(text: &str) -> Result<Self, DisplayNameError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if text.chars().count() > DISPLAY_NAME_MAX_LEN {
            return Err(DisplayNameError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(DisplayNameError::ControlCharacter);
        }
        Ok(Self(text.to_owned()))
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
            Err(DisplayNameError::TooLong)
        );
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn name_with_a_control_character_is_rejected() {
        assert_eq!(
            DisplayName::parse("Ada\u{1b}[2J"),
            Err(DisplayNameError::ControlCharacter)
        );
    }
}
