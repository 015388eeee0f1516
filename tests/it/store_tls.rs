//! Transport security to PostgreSQL comes from `DATABASE_URL` (`sslmode`, `sslrootcert`), and
//! it is honoured: `require` really encrypts, `verify-full` really checks the certificate.

use sqlx::{Connection, PgConnection};
use xdr_commands::testing::TestDb;

async fn encrypted(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(conn).await
}

#[tokio::test]
async fn sslmode_in_database_url_is_honoured() {
    let db = TestDb::new().await;
    let mut plain = PgConnection::connect(&format!("{}?sslmode=disable", db.url())).await.unwrap();
    let server_has_tls: bool =
        sqlx::query_scalar("SELECT current_setting('ssl') = 'on'").fetch_one(&mut plain).await.unwrap();
    assert!(!encrypted(&mut plain).await.unwrap());

    if server_has_tls {
        let mut tls = PgConnection::connect(&format!("{}?sslmode=require", db.url())).await.expect("TLS connection");
        assert!(encrypted(&mut tls).await.unwrap(), "sslmode=require must encrypt");
        // The local server's self-signed certificate is not trusted: full verification refuses it.
        let verified = PgConnection::connect(&format!("{}?sslmode=verify-full", db.url())).await;
        assert!(verified.is_err(), "an untrusted certificate must be refused");
    } else {
        let required = PgConnection::connect(&format!("{}?sslmode=require", db.url())).await;
        assert!(required.is_err(), "sslmode=require must not fall back to plain TCP");
    }
    // A CA file named in the URL must exist.
    let pinned =
        PgConnection::connect(&format!("{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", db.url())).await;
    assert!(pinned.is_err());
}
