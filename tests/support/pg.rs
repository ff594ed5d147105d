//! A PostgreSQL schema per test, named in the store URL's `options`, dropped afterwards.

use access_broker::store::StoreUrl;

pub const ENV: &str = "TEST_POSTGRES_URL";

/// The base URL of the test database, or `None` after printing how to enable these tests.
/// Under `CI=true` a missing URL is a failure, never a skip.
pub fn base_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{ENV} is not set, and CI=true requires the PostgreSQL tests")
        }
        _ => {
            eprintln!(
                "skipped: PostgreSQL test; set {ENV}=postgres://postgres@127.0.0.1:5432/test to run it"
            );
            None
        }
    }
}

pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    #[cfg(feature = "postgres")]
    pub async fn create() -> Option<Schema> {
        let base = base_url()?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&base).await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        Some(Schema { base, name })
    }

    #[cfg(not(feature = "postgres"))]
    pub async fn create() -> Option<Schema> {
        eprintln!("skipped: PostgreSQL test; built without the postgres feature");
        None
    }

    pub fn url(&self) -> StoreUrl {
        self.url_string().parse().expect("store url")
    }

    /// The URL with the schema as `search_path`, password included (for child processes).
    pub fn url_string(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "postgres")]
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to test database");
    tokio::spawn(conn);
    client
}

impl Drop for Schema {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        {
            if std::env::var_os("KEEP_TEST_DB").is_some() {
                eprintln!("kept schema {}", self.name);
                return;
            }
            let (base, name) = (self.base.clone(), self.name.clone());
            // Drop runs outside any runtime we may block; use a throwaway one on its own thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        let client = connect(&base).await;
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                            .await;
                    });
                }
            })
            .join();
        }
    }
}
