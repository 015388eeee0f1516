//! Read side of Mini-XDR: audit tools over the log (verify, replay) and, as they land,
//! the projection runner and read models.
#![forbid(unsafe_code)]

pub mod orgs;
pub mod replay;
pub mod verify;
