//! Authentication: password hashing (argon2id on the blocking pool), tokens (HS256 JWT),
//! an injectable clock, and the identity command handlers that use them.

pub mod clock;
pub mod identity;
pub mod link_tokens;
pub mod password_reset;
pub mod passwords;
pub mod tokens;
pub mod totp;

pub use clock::Clock;
pub use identity::{AuthError, IdentityService, LoginDefence, SignedIn, LOGIN_DEFENCE};
pub use link_tokens::LinkTokens;
pub use passwords::PasswordHasher;
pub use tokens::{Claims, TokenKind, TokenPair, TokenService};
