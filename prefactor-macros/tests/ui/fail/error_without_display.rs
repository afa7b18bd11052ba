#[derive(Debug)]
pub struct Oops;

#[prefactor::span(schema = "agent:tool")]
fn risky(n: u32) -> Result<u32, Oops> {
    if n > 0 { Ok(n) } else { Err(Oops) }
}

fn main() {}
