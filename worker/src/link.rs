//! A worker's RabbitMQ link is the workspace's one [`Link`]: a consume channel with
//! the prefetch and a confirm channel for retries and dead letters, replaced as a
//! whole on reconnect (`consumer::open` opens it).

pub(crate) use taskfleet_common::amqp::{Link, Settle};
