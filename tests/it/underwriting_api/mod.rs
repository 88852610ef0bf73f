//! UnderwritingService over a real socket, against real PostgreSQL and the simulators.

mod audit;
mod cost;
mod evaluation;
mod funding;
mod keys;
mod notices;
mod pii;
mod refresh;
mod reports;
mod rescope;
mod review;
mod submission;
