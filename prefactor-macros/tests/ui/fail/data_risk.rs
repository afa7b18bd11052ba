fn not_a_risk() -> u32 {
    3
}

#[prefactor::span(schema = "agent:a", data_risk = "lookup_risk")]
fn literal() {}

#[prefactor::span(schema = "agent:b", data_risk = not_a_risk)]
fn wrong_type() {}

fn main() {}
