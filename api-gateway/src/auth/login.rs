//! [`Login`]: what a person signs in with, an email or a username.
//!
//! An email always has an `@` and a username never does, so one login text names at most one
//! account and the same parser serves registration and sign-in. Both compare without regard to
//! case (the unique indexes are on `lower(...)`), but are stored as typed. The rules are loose
//! on purpose for emails (whether an address is real is for a confirmation mail to find out)
//! and narrow for usernames, which other people may see and type.

use std::fmt;

/// Longest email accepted (RFC 5321's path limit less the angle brackets).
pub const EMAIL_MAX_LEN: usize = 254;
/// Username length bounds, in characters (all ASCII).
pub const USERNAME_MIN_LEN: usize = 3;
pub const USERNAME_MAX_LEN: usize = 32;

/// Why a text is not a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("must not be empty")]
    Empty,
    #[error("an email must have one '@' with text on both sides and a dot in the domain")]
    MalformedEmail,
    #[error("an email must be at most {EMAIL_MAX_LEN} characters")]
    EmailTooLong,
    #[error("an email must not contain spaces or control characters")]
    EmailWhitespace,
    #[error("a username must be {USERNAME_MIN_LEN} to {USERNAME_MAX_LEN} characters")]
    UsernameLength,
    #[error("a username may contain only letters, digits, '_', '-' and '.'")]
    UsernameCharacter,
}

/// An email or a username, valid by the rules above. The fields are private: values come only
/// from [`Login::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Username,
}

impl Login {
    /// Parses a login, trimming surrounding whitespace (a pasted address often has some).
    ///
    /// # Errors
    /// [`LoginError`] naming the rule broken.
    pub fn parse(text: &str) -> Result<Self, LoginError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LoginError::Empty);
        }
        let kind = if text.contains('@') {
            parse_email(text)?;
            Kind::Email
        } else {
            parse_username(text)?;
            Kind::Username
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The email, when this login is one.
    pub fn email(&self) -> Option<&str> {
        (self.kind == Kind::Email).then_some(self.text.as_str())
    }

    /// The username, when this login is one.
    pub fn username(&self) -> Option<&str> {
        (self.kind == Kind::Username).then_some(self.text.as_str())
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_email(text: &str) -> Result<(), LoginError> {
    if text.chars().count() > EMAIL_MAX_LEN {
        return Err(LoginError::EmailTooLong);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LoginError::EmailWhitespace);
    }
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err(LoginError::MalformedEmail);
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err(LoginError::MalformedEmail);
    }
    Ok(())
}

fn parse_username(text: &str) -> Result<(), LoginError> {
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(LoginError::UsernameCharacter);
    }
    if !(USERNAME_MIN_LEN..=USERNAME_MAX_LEN).contains(&text.len()) {
        return Err(LoginError::UsernameLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_with_an_at_sign_is_an_email() {
        let login = Login::parse("Ada@Example.org").expect("valid");
        assert_eq!(login.email(), Some("Ada@Example.org"));
        assert_eq!(login.username(), None);
    }

    #[test]
    fn text_without_an_at_sign_is_a_username() {
        let login = Login::parse("ada.lovelace_1815").expect("valid");
        assert_eq!(login.username(), Some("ada.lovelace_1815"));
        assert_eq!(login.email(), None);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(
            Login::parse("  ada \n").map(|l| l.as_str().to_owned()),
            Ok("ada".into())
        );
    }

    #[test]
    fn empty_login_is_rejected() {
        assert_eq!(Login::parse("   "), Err(LoginError::Empty));
    }

    #[test]
    fn email_without_local_part_or_dotted_domain_is_rejected() {
        for bad in [
            "@example.org",
            "ada@",
            "ada@localhost",
            "ada@.org",
            "ada@example.",
            "a@b@c.org",
            "ada@ex..org",
        ] {
            assert_eq!(Login::parse(bad), Err(LoginError::MalformedEmail), "{bad}");
        }
    }

    #[test]
    fn email_with_inner_whitespace_is_rejected() {
        assert_eq!(
            Login::parse("ada love@example.org"),
            Err(LoginError::EmailWhitespace)
        );
    }

    #[test]
    fn email_longer_than_254_characters_is_rejected() {
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Login::parse(&long), Err(LoginError::EmailTooLong));
    }

    #[test]
    fn username_of_two_or_thirty_three_characters_is_rejected() {
        assert_eq!(Login::parse("ab"), Err(LoginError::UsernameLength));
        assert_eq!(
            Login::parse(&"a".repeat(33)),
            Err(LoginError::UsernameLength)
        );
        assert!(Login::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn username_with_other_characters_is_rejected() {
        for bad in ["ada lovelace", "ada:1", "ädä", "a{b}c"] {
            assert_eq!(
                Login::parse(bad),
                Err(LoginError::UsernameCharacter),
                "{bad}"
            );
        }
    }
}
