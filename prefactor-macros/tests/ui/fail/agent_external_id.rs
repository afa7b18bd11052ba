struct Job {
    id: Vec<u8>,
}

#[prefactor::agent(external_id)]
fn no_value() {}

#[prefactor::agent(external_id = "  ")]
fn blank() {}

#[prefactor::agent(external_id = "a", external_id = "b")]
fn twice() {}

#[prefactor::agent(external_id(job))]
fn parenthesized(job: &Job) -> usize {
    job.id.len()
}

#[prefactor::agent(external_id = job.id)]
fn not_a_string(job: &Job) -> usize {
    job.id.len()
}

fn main() {}
