struct Connection;

#[prefactor::span(schema = "agent:tool")]
fn query(connection: &Connection, sql: &str) -> usize {
    let _ = connection;
    sql.len()
}

fn main() {}
