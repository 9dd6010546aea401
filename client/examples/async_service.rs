//! A plain tokio TCP service answering from a shared `mpserver` dict and
//! handing work to async workers through a shared queue (the remote
//! queue recipe, with tasks instead of processes).
//!
//! Each request is one line, a word: the service counts it in the shared
//! dict `hits`, queues it on `jobs`, and answers the word's count. Two
//! worker tasks take words from `jobs` and record their length in `lengths`.
//! The example starts its own manager, serves three requests from its own
//! client and stops: `cargo run --example async_service --features asyncio`.

use multiprocessing::connection::Address;
use multiprocessing::managers::asyncio::{AsyncDictProxy, AsyncQueueProxy, AsyncSyncManager};
use multiprocessing::managers::Manager;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production this is `mpserver serve --shared hits=dict ...`; here
    // the example starts a manager of its own, before any runtime (the
    // server runs in a forked child).
    let server = Manager::start("127.0.0.1:0", b"service-key")?;
    let address = server.address().clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(address))
}

async fn run(address: Address) -> Result<(), Box<dyn std::error::Error>> {
    let manager = AsyncSyncManager::connect(&address, b"service-key").await?;
    let hits = manager.dict::<String, i64>().await?;
    let lengths = manager.dict::<String, usize>().await?;
    let jobs = manager.joinable_queue::<Option<String>>().await?;
    manager.publish("hits", &hits).await?;

    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (jobs, lengths) = (jobs.clone(), lengths.clone());
            tokio::spawn(async move {
                // `None` is the sentinel that stops a worker.
                while let Some(word) = jobs.get().await? {
                    lengths.set(word.as_str(), word.len()).await?;
                    jobs.task_done().await?;
                }
                jobs.task_done().await?;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let service = tokio::spawn({
        let jobs = jobs.clone();
        async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                // Any other task finds the dict by name.
                let (jobs, manager) = (jobs.clone(), manager.clone());
                tokio::spawn(async move {
                    let hits: AsyncDictProxy<String, i64> = manager.lookup("hits").await?;
                    serve(socket, hits, jobs).await
                });
            }
        }
    });

    for word in ["tokio", "manager", "tokio"] {
        let mut socket = TcpStream::connect(address).await?;
        socket.write_all(format!("{word}\n").as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(socket).read_line(&mut answer).await?;
        println!("{word}: seen {}", answer.trim());
    }
    service.abort();

    // Stop the workers once every word is processed.
    for _ in 0..workers.len() {
        jobs.put(None).await?;
    }
    jobs.join().await?;
    for w in workers {
        w.await?.map_err(|e| e.to_string())?;
    }
    let mut lengths = lengths.items().await?;
    lengths.sort();
    println!("lengths: {lengths:?}");
    Ok(())
}

/// Answers one connection's lines.
async fn serve(
    socket: TcpStream,
    hits: AsyncDictProxy<String, i64>,
    jobs: AsyncQueueProxy<Option<String>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(word) = lines.next_line().await? {
        let seen = hits.get_or(word.as_str(), 0).await? + 1;
        hits.set(word.as_str(), seen).await?;
        jobs.put(Some(word)).await?;
        write.write_all(format!("{seen}\n").as_bytes()).await?;
    }
    Ok(())
}
