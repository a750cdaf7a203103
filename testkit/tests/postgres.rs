//! The PostgreSQL fixture against the real server binaries.

use testkit::Postgres;

async fn select_one(url: &str) -> Result<i32, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .query_one("SELECT 1", &[])
        .await
        .map(|row| row.get(0))
}

#[tokio::test]
async fn shared_cluster_gives_each_caller_its_own_database() {
    let pg = Postgres::shared();
    let (a, b) = (pg.create_database(), pg.create_database());
    assert_ne!(a, b);
    assert_eq!(select_one(&a).await.unwrap(), 1);
    assert_eq!(select_one(&b).await.unwrap(), 1);
}

#[tokio::test]
async fn private_cluster_stops_and_comes_back() {
    let pg = Postgres::start();
    let url = pg.create_database();
    assert_eq!(select_one(&url).await.unwrap(), 1);
    pg.stop();
    assert!(
        select_one(&url).await.is_err(),
        "a stopped cluster must refuse connections"
    );
    pg.restart();
    assert_eq!(select_one(&url).await.unwrap(), 1);
}
