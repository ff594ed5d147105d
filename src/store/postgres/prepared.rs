//! Statements prepared once per connection and kept (deadpool's statement cache), for the
//! statements every request runs. An unnamed statement is parsed and planned again on each
//! call: in the profile of the request/match workload that was a quarter of the machine's
//! CPU, more than executing the statements.
//!
//! The same shape as `tokio_postgres`'s `query_typed`: each parameter with its type, so the
//! text needs no casts and the first call needs no round trip to learn the types.

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

    async fn execute_prepared(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        let (types, values) = split(params);
        let statement = self.prepare_typed_cached(sql, &types).await?;
        self.execute(&statement, &values).await
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
