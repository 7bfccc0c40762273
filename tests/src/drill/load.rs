//! The users: each asks for a random character's equipment, likes it, or asks for its
//! expectation (3 : 1 : 1, [`Mix::USERS`]), then thinks for a random 0.1–0.5 s. Every answer is kept as a
//! sample; every like carries its own `Idempotency-Key`, and a like not acknowledged (any
//! answer but 202, or no answer) is sent again with the same key on a later like (by whichever
//! user likes next), as a careful client does. So at the end each key is acknowledged once, and the database must
//! hold exactly one like per acknowledged key.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Equipment,
    Like,
    Expectation,
}

/// One answer (or its absence: status 0).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    pub kind: Kind,
    pub status: u16,
    pub latency: Duration,
}

/// The likes sent: acknowledged keys (with their character) and keys still waiting.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acknowledged: HashMap<String, String>,
    /// Keys whose like was sent but not acknowledged, with their character.
    pub pending: VecDeque<(String, String)>,
}

/// Names the simulator knows: `drill` and five letters.
pub fn character(i: usize) -> String {
    crate::load::character_name("drill", i)
}

/// An answer's status once its whole body has come (0: no answer, or the body broke off).
async fn status(answer: reqwest::Result<reqwest::Response>) -> u16 {
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            if answer.bytes().await.is_ok() {
                status
            } else {
                0
            }
        }
        Err(_) => 0,
    }
}

/// What the users ask for, in what proportion, and how long they think in between.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Weights of equipment, likes and expectations.
    pub weights: [u32; 3],
    /// Think time between two requests, ms (`(0, 0)`: a closed loop at full speed).
    pub think_ms: (u64, u64),
}

impl Mix {
    /// The drill's users: equipment, likes and expectations 3 : 1 : 1, thinking 0.1–0.5 s.
    pub const USERS: Self = Self {
        weights: [3, 1, 1],
        think_ms: (100, 500),
    };
}

/// The load's shared state.
#[derive(Debug)]
pub struct Load {
    target: String,
    characters: usize,
    mix: Mix,
    started: Instant,
    client: reqwest::Client,
    stop: AtomicBool,
    pub samples: Mutex<Vec<Sample>>,
    pub ledger: Mutex<Ledger>,
    run: String,
}

impl Load {
    pub fn new(target: &str, characters: usize, mix: Mix) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            // Above the balancer's server timeout (15 s): its answer comes first.
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            target: target.trim_end_matches('/').to_owned(),
            characters,
            mix,
            started: Instant::now(),
            client,
            stop: AtomicBool::new(false),
            samples: Mutex::new(Vec::new()),
            ledger: Mutex::new(Ledger::default()),
            run: format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        })
    }

    /// Since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every character's equipment once, before the clock: the steady state of a service
    /// whose characters are cached (and one Nexon call per character to begin with).
    pub async fn warm(&self) -> anyhow::Result<()> {
        use futures::StreamExt as _;
        let failures = futures::stream::iter(0..self.characters)
            .map(|i| async move {
                let url = format!("{}/v1/characters/{}/equipment", self.target, character(i));
                for _ in 0..20 {
                    if let Ok(answer) = self.client.get(&url).send().await
                        && answer.status().is_success()
                        && answer.bytes().await.is_ok()
                    {
                        return 0;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                1
            })
            .buffer_unordered(8)
            .fold(0, |sum, failed| async move { sum + failed })
            .await;
        if failures > 0 {
            anyhow::bail!("{failures} characters could not be fetched before the load");
        }
        Ok(())
    }

    /// Starts `users` users.
    pub fn start(self: &Arc<Self>, users: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..users)
            .map(|user| {
                let load = Arc::clone(self);
                tokio::spawn(async move { load.user(user).await })
            })
            .collect()
    }

    /// Users finish their current request and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    async fn user(&self, user: usize) {
        let mut sent = 0_u64;
        let [equipment, likes, expectations] = self.mix.weights;
        let total = (equipment + likes + expectations).max(1);
        while !self.stop.load(Ordering::Relaxed) {
            let (min, max) = self.mix.think_ms;
            if max > 0 {
                let think = rand::rng().random_range(min..=max);
                tokio::time::sleep(Duration::from_millis(think)).await;
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            let (roll, i) = {
                let mut rng = rand::rng();
                (
                    rng.random_range(0..total),
                    rng.random_range(0..self.characters),
                )
            };
            match roll {
                r if r < equipment => self.get(Kind::Equipment, &character(i), "equipment").await,
                r if r < equipment + likes => {
                    let again = self.ledger_lock().pending.pop_front();
                    let (key, name) = again.unwrap_or_else(|| {
                        sent += 1;
                        (format!("{}-{user}-{sent}", self.run), character(i))
                    });
                    self.like(&key, &name).await;
                }
                _ => {
                    self.get(Kind::Expectation, &character(i), "expectation")
                        .await
                }
            }
        }
    }

    fn ledger_lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, kind: Kind, status: u16, began: Instant) {
        let sample = Sample {
            at: began.duration_since(self.started),
            kind,
            status,
            latency: began.elapsed(),
        };
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sample);
    }

    async fn get(&self, kind: Kind, name: &str, what: &str) {
        let began = Instant::now();
        let url = format!("{}/v1/characters/{name}/{what}", self.target);
        let answer = self
            .client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await;
        self.record(kind, status(answer).await, began);
    }

    /// Sends one like; `true` once it is acknowledged.
    pub async fn like(&self, key: &str, name: &str) -> bool {
        let began = Instant::now();
        let url = format!("{}/v1/characters/{name}/likes", self.target);
        let answer = self
            .client
            .post(&url)
            .header("idempotency-key", key)
            .send()
            .await;
        let status = status(answer).await;
        self.record(Kind::Like, status, began);
        let mut ledger = self.ledger_lock();
        if status == 202 {
            ledger.acknowledged.insert(key.to_owned(), name.to_owned());
            true
        } else {
            ledger.pending.push_back((key.to_owned(), name.to_owned()));
            false
        }
    }

    /// After the users stopped: sends every unacknowledged like again until each is
    /// acknowledged or `within` has passed (checked before each like; one like may take its
    /// own 20 s timeout past it); answers how many are still unacknowledged.
    pub async fn settle_likes(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let Some((key, name)) = self.ledger_lock().pending.pop_front() else {
                return 0;
            };
            if !self.like(&key, &name).await {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.ledger_lock().pending.len()
    }

    /// Acknowledged likes per character.
    pub fn acknowledged_by_character(&self) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for name in self.ledger_lock().acknowledged.values() {
            *counts.entry(name.clone()).or_default() += 1;
        }
        counts
    }
}
