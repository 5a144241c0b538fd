//! [`NewPassword`]: the rules a password must meet when it is set.
//!
//! They follow NIST SP 800-63B and OWASP ASVS: a length floor and ceiling, no composition
//! rules (they make passwords worse, not stronger), not just whitespace, not the login itself.
//! Length counts characters, not bytes, so a passphrase in any script is judged alike.

use super::login::Login;
use std::fmt;

/// Shortest accepted password, in characters (ASVS 2.1.1).
pub const PASSWORD_MIN_LEN: usize = 12;
/// Longest accepted password, in characters (ASVS 2.1.2 permits at least 64 and refuses more
/// than 128).
pub const PASSWORD_MAX_LEN: usize = 128;

/// Which rule a new password breaks (the text follows "password ").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("must be at least {PASSWORD_MIN_LEN} characters")]
    TooShort,
    #[error("must be at most {PASSWORD_MAX_LEN} characters")]
    TooLong,
    #[error("must not be only whitespace")]
    OnlyWhitespace,
    #[error("must not be the same as the login")]
    SameAsLogin,
}

/// A password that meets the rules, to be hashed. Its `Debug` never shows it.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Checks `password` against the rules for an account signing in with `login`. The text is
    /// kept exactly as typed (no trimming), since that is what the user will type again.
    ///
    /// # Errors
    /// [`PasswordRule`] naming the first rule broken.
    pub fn parse(password: &str, login: &Login) -> Result<Self, PasswordRule> {
        let length = password.chars().count();
        if length < PASSWORD_MIN_LEN {
            return Err(PasswordRule::TooShort);
        }
        if length > PASSWORD_MAX_LEN {
            return Err(PasswordRule::TooLong);
        }
        if password.chars().all(char::is_whitespace) {
            return Err(PasswordRule::OnlyWhitespace);
        }
        if password.trim().to_lowercase() == login.as_str().to_lowercase() {
            return Err(PasswordRule::SameAsLogin);
        }
        Ok(Self(password.to_owned()))
    }

    /// The password, for the hasher only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(text: &str) -> Login {
        Login::parse(text).expect("valid login")
    }

    #[test]
    fn password_of_eleven_characters_is_rejected() {
        assert_eq!(
            NewPassword::parse("elevenchars", &login("ada")).err(),
            Some(PasswordRule::TooShort)
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Twelve characters, 24 bytes.
        assert!(NewPassword::parse(&"é".repeat(12), &login("ada")).is_ok());
        assert_eq!(
            NewPassword::parse(&"é".repeat(11), &login("ada")).err(),
            Some(PasswordRule::TooShort)
        );
    }

    #[test]
    fn password_of_129_characters_is_rejected() {
        assert_eq!(
            NewPassword::parse(&"x".repeat(129), &login("ada")).err(),
            Some(PasswordRule::TooLong)
        );
        assert!(NewPassword::parse(&"x".repeat(128), &login("ada")).is_ok());
    }

    #[test]
    fn password_of_only_whitespace_is_rejected() {
        assert_eq!(
            NewPassword::parse(" \t \n         \u{a0}", &login("ada")).err(),
            Some(PasswordRule::OnlyWhitespace)
        );
    }

    #[test]
    fn password_equal_to_the_login_in_any_case_is_rejected() {
        assert_eq!(
            NewPassword::parse("Ada@Example.org", &login("ada@example.org")).err(),
            Some(PasswordRule::SameAsLogin)
        );
        assert_eq!(
            NewPassword::parse("  lovelace1815  ", &login("Lovelace1815")).err(),
            Some(PasswordRule::SameAsLogin)
        );
    }

    #[test]
    fn passphrase_without_composition_rules_is_accepted() {
        assert!(NewPassword::parse("correct horse battery staple", &login("ada")).is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let password =
            NewPassword::parse("correct horse battery staple", &login("ada")).expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
    }
}
