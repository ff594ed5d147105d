//! Statements prepared once per connection and kept (deadpool's statement cache), for the
//! statements every request runs. An unnamed statement is parsed and planned again on each
//! call: in the profile of the request/match workload that was a quarter of the machine's
//! CPU, more than executing the statements.
//!
//! The same shape as `tokio_postgres`'s `query_typed`: each parameter with its type, so the
//! text needs no casts and the first call needs no round trip to learn the types.
//!
//! Statements that go to the database together (a batch's reads, its writes and `COMMIT`) are
//! values ([`Stmt`]) sent by [`send`]: every one is prepared before any is sent, so a
//! statement that misses the cache is never held back by its preparation while the next one
//! (a lock, a `COMMIT`) overtakes it. What is sent together is executed in order and costs one
//! round trip.

use futures::future::try_join_all;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, Row};

/// A parameter and its type.
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Queries, executions and single rows through the connection's statement cache.
pub trait Prepared: deadpool_postgres::GenericClient {
    async fn query_prepared(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        let (types, values) = split(params);
        let statement = self.prepare_typed_cached(sql, &types).await?;
        self.query(&statement, &values).await
    }

    async fn query_one_prepared(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, Error> {
        let (types, values) = split(params);
        let statement = self.prepare_typed_cached(sql, &types).await?;
        self.query_one(&statement, &values).await
    }

    /// A statement whose parameter types the server infers (prepared once, like the others).
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<C: deadpool_postgres::GenericClient + ?Sized> Prepared for C {}

fn split<'a>(params: &[Param<'a>]) -> (Vec<Type>, Vec<&'a (dyn ToSql + Sync)>) {
    params
        .iter()
        .map(|(value, ty)| (ty.clone(), *value))
        .unzip()
}

/// A statement with its parameters, owned (or borrowed from the batch's rows), to be sent
/// with others by [`send`].
pub struct Stmt<'a> {
    sql: std::borrow::Cow<'a, str>,
    params: Vec<(Box<dyn ToSql + Sync + Send + 'a>, Type)>,
}

impl<'a> Stmt<'a> {
    pub fn new(sql: impl Into<std::borrow::Cow<'a, str>>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// The next parameter (`$1`, `$2`, … in order) and its type.
    pub fn bind(mut self, value: impl ToSql + Sync + Send + 'a, ty: Type) -> Self {
        self.params.push((Box::new(value), ty));
        self
    }
}

/// Prepares every statement (from the connection's cache; those it misses in one round trip
/// together). Once this returns, sending them cannot reorder them.
pub async fn prepare<C: deadpool_postgres::GenericClient>(
    client: &C,
    stmts: &[Stmt<'_>],
) -> Result<Vec<tokio_postgres::Statement>, Error> {
    try_join_all(stmts.iter().map(|s| {
        let types: Vec<Type> = s.params.iter().map(|(_, ty)| ty.clone()).collect();
        async move { client.prepare_typed_cached(&s.sql, &types).await }
    }))
    .await
}

/// Sends prepared statements in order, in one round trip, and returns each one's rows.
/// `try_join_all` polls its futures in order and each sends its statement on its first poll,
/// so the database receives (and executes) them in this order.
pub async fn send_prepared<C: deadpool_postgres::GenericClient>(
    client: &C,
    prepared: &[tokio_postgres::Statement],
    stmts: &[Stmt<'_>],
) -> Result<Vec<Vec<Row>>, Error> {
    let values: Vec<Vec<&(dyn ToSql + Sync)>> = stmts
        .iter()
        .map(|s| {
            s.params
                .iter()
                .map(|(v, _)| v.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    try_join_all(
        prepared
            .iter()
            .zip(&values)
            .map(|(statement, values)| client.query(statement, values)),
    )
    .await
}

/// [`prepare`], then [`send_prepared`]: the statements in order, one round trip once they
/// are in the connection's cache.
pub async fn send<C: deadpool_postgres::GenericClient>(
    client: &C,
    stmts: &[Stmt<'_>],
) -> Result<Vec<Vec<Row>>, Error> {
    let prepared = prepare(client, stmts).await?;
    send_prepared(client, &prepared, stmts).await
}
