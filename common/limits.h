/*
 * Caps on everything that grows from outside input, in one place, each with
 * the reason for its value (SQLite's sqliteLimit.h).
 */
#ifndef DD_COMMON_LIMITS_H
#define DD_COMMON_LIMITS_H

/* VDO's block size; every estimate works in these units. */
#define DD_BLOCK_SIZE 4096u

/* One read request of the estimator: large enough that a syscall (~1.5 us
 * here) is noise against hashing 1 MiB (~40 us), small enough that
 * threads x in-flight chunks stays a few MiB. */
#define DD_SCAN_CHUNK_BYTES (1u << 18)

/* Chunks hashed but not yet merged, per worker thread: bounds the memory held
 * for ordering results when one worker is briefly slow. */
#define DD_SCAN_INFLIGHT_PER_THREAD 4u

/* Worker threads for the estimator: more than this gains nothing against
 * page-cache bandwidth and only costs memory. */
#define DD_SCAN_MAX_THREADS 256u

/* Directory depth followed by the walk: deeper trees are reported, not
 * followed, so a pathological tree cannot exhaust file descriptors. */
#define DD_SCAN_MAX_DEPTH 256u

/* Files in one estimate: bounds the file list (about 100 bytes a file). */
#define DD_SCAN_MAX_FILES (64u * 1024u * 1024u)

/* Inputs recorded with their own error in --keep-going output. */
#define DD_SCAN_MAX_REPORTED_ERRORS 1000u

/* VDO packs at most this many compressed fragments into one 4 KiB block
 * (VDO_MAX_COMPRESSION_SLOTS). */
#define DD_VDO_MAX_COMPRESSION_SLOTS 14u

/* Bytes of a compressed block that hold fragments: 4096 minus the header
 * (two 32-bit version numbers and 14 16-bit sizes = 36 bytes). */
#define DD_VDO_COMPRESSED_DATA_SIZE (4096u - 36u)

/* Packer bins VDO keeps open (DEFAULT_PACKER_BINS). */
#define DD_VDO_PACKER_BINS 16u

/* A VDO stats reply is ~5 KiB (vdostats reads it into 8 KiB); anything past
 * this is not a stats reply. */
#define DD_VDO_MAX_REPLY_BYTES (64u * 1024u)

/* Groups nest three deep in version 36 (journal.entries.started). */
#define DD_VDO_MAX_DEPTH 8u

/* Version 36 has 156 leaves; room for newer versions, not for garbage. */
#define DD_VDO_MAX_KEYS 1024u

/* Longest key or value token; real ones are under 40 characters. */
#define DD_VDO_MAX_TOKEN 128u

/* A status or table line; real ones are under 300 characters. */
#define DD_VDO_MAX_LINE 4096u

/* HTTP request bodies: the largest we accept is an extender request listing
 * thousands of nodes (~100 KB, PERF-NOTES); 1 MiB leaves room and bounds
 * memory per connection. Larger bodies get 413. */
#define DD_HTTP_MAX_BODY (1u << 20)

/* A client certificate's identity (its subject CN, else its first DNS
 * SAN) as handlers see it: a Kubernetes node name is at most 253 bytes,
 * "system:node:" adds 12. Longer names are no identity. */
#define DD_HTTP_MAX_IDENTITY 272u

/* Routes a server can hold: the API has a few dozen. */
#define DD_HTTP_MAX_ROUTES 64u

/* Path parameters in one route pattern ("/v1/volumes/{name}/history"). */
#define DD_HTTP_MAX_PARAMS 4u

/* Longest request path considered; longer ones are 414. */
#define DD_HTTP_MAX_PATH 2048u

/* A bearer token file: service-account tokens (JWTs) are about 1 KiB and
 * random tokens under 100 bytes; a file past 4 KiB is not a token (the old
 * 512-byte read silently cut longer ones, which then never matched). */
#define DD_TOKEN_MAX_BYTES 4096u

/* Shortest token accepted, counted after the trailing newline is stripped:
 * 16 random printable characters are ~100 bits, enough against guessing
 * over the network; shorter ones are typing mistakes or placeholders. */
#define DD_TOKEN_MIN_CHARS 16u

/* A reply body read by dedupctl's client: the largest, a long history, is a
 * few MiB; anything past 64 MiB is not one of ours. */
#define DD_HTTP_CLIENT_MAX_REPLY (64u << 20)

/* A client URL (base + path + query): paths are capped at DD_HTTP_MAX_PATH
 * by the server; twice that leaves room for the base and the query. */
#define DD_HTTP_CLIENT_MAX_URL 8192u
/* Open HTTP connections in all: the placement role is pushed to by every
 * node (5,000 in the largest cluster we plan for), each with a connection
 * open at times, plus probes and dedupctl; 8,192 leaves room. Each costs an
 * fd and, while a request is open, its libmicrohttpd memory pool. */
#define DD_HTTP_MAX_CONNECTIONS 8192u

/* Open HTTP connections from one client address, by default: one address
 * cannot take more than an eighth of the table (1,100 idle connections from
 * one host locked everyone out), while a NAT gateway in front of hundreds of
 * nodes, each pushing briefly, still fits. Operators with more behind one
 * address raise it (up to max_connections = off). */
#define DD_HTTP_PER_IP_CONNECTIONS 1024u

/* Seconds an HTTP connection may stay silent before it is closed. Our
 * clients send a request in one go and answer within milliseconds; a slow
 * reader or trickler holding a slot for 30 s (libmicrohttpd's former
 * setting) made lock-outs cheap. */
#define DD_HTTP_IDLE_TIMEOUT_S 10u

/* HTTP worker threads by default: handlers are short, but one slow request
 * (a history scan, a /metrics render) should not stall every connection its
 * worker serves. */
#define DD_HTTP_THREADS 4u

/* More HTTP workers than this only cost stacks and epoll sets. */
#define DD_HTTP_MAX_THREADS 256u

/* Query arguments in one request: our routes take at most four; beyond a
 * few hundred libmicrohttpd runs out of its per-connection pool and closes
 * the connection without an answer, so we answer 400 well before that. */
#define DD_HTTP_MAX_QUERY_ARGS 64u

/* Longest comm kept, NUL included. The kernel prints at most 63 bytes (a
 * 64-byte buffer in proc_task_name; 6.12 shows kthread names past 15 bytes in
 * full); twice that, so a kernel that widens it does not turn long kthread
 * names into unparsable lines. Real dm-vdo names are at most 14 bytes. */
#define DD_PROC_COMM_MAX 128u

/* Longest /proc/<pid>/stat text: 52 fields of at most 21 bytes plus the comm
 * are under 1.3 KiB today; a page leaves room for fields to come. */
#define DD_PROC_STAT_LINE_MAX 4096u

/* VDO threads kept by one scan. A volume has 13 to 18 with the defaults and
 * at most a few hundred tuned (vdo.rst: logical at most 60, physical 16;
 * ack, bio, cpu and hash counts are single digits in practice), so this is
 * hundreds of volumes; past it the tree is not a real /proc and the scan
 * fails. About 280 bytes a thread. */
#define DD_VDO_MAX_THREADS 16384u

/* Names that cross the wire (volumes, pools, nodes): dm names are at most
 * 127 bytes (DM_NAME_LEN 128) and Kubernetes node names at most 253 (a DNS
 * subdomain); 256 bytes with the NUL holds both. */
#define DD_NAME_MAX 256u

/* Named pod profiles in the placement configuration: a handful per workload
 * class; a profile is looked up per scored pod, linearly. */
#define DD_MAX_PROFILES 64u

/* In-flight ledger entries: pods placed in the last minutes and not yet seen
 * doing I/O. A burst of 10,000 pods fits; a runaway caller cannot grow it
 * without bound (a full ledger answers ENOSPC and the pod is scored, not
 * recorded). */
#define DD_LEDGER_MAX_ENTRIES 10000u

/* Candidate nodes in one extender request: kube-scheduler sends the nodes
 * that passed its filters, at most the cluster's nodes (5,000 is the
 * Kubernetes scalability limit); room for twice that. */
#define DD_EXTENDER_MAX_NODES 10000u

/* Body cap of the extender routes. Names mode (recommended) is ~40 B a node
 * plus the pod: 5,000 names fit in 256 KiB. Full-Nodes mode carries whole
 * Node objects (3-30 KB each, status.images alone can be ~25 KB): 16 MiB
 * holds ~500-5,000 of them; larger clusters must use names mode. */
#define DD_EXTENDER_MAX_BODY (16u * 1024u * 1024u)

/* A store series name: a prefix ("node/<node>/vol/") and two names. */
#define DD_SERIES_MAX (2u * DD_NAME_MAX + 16u)

/* VDO volumes one node reports: a node has a handful; 64 leaves room for
 * many small pools per node and bounds a report's size. */
#define DD_MAX_VOLUMES_PER_NODE 64u

/* Pods one report lists: the kubelet's default max-pods is 110 and large
 * nodes run 250-500. */
#define DD_MAX_PODS_PER_REPORT 512u

/* GPUs one report lists: 8 per board, 16 on the largest boards, MIG slices
 * are not devices here. */
#define DD_MAX_GPUS_PER_REPORT 64u

/* A node report's body: 64 volumes of ~1.2 KB and 512 pods of ~250 bytes
 * are ~210 KB; 512 KiB leaves room for names at their longest. */
#define DD_REPORT_MAX_BODY (512u * 1024u)

/* Reports a node keeps queued while the placement role is down or slow:
 * with a 10 s interval, 5 minutes; older reports are dropped (counted). */
#define DD_PUSH_QUEUE_MAX 30u

/* The Kubernetes cache (placement/kube, dedupd/kubewatch). */
/* Claims kept per pod: pods mount a handful; past 16 the rest are dropped
 * and the pod says so (claims_truncated), so one pod cannot grow a reply. */
#define DD_KUBE_MAX_CLAIMS 16u
/* GPU resource names counted (nvidia.com/gpu and MIG profiles): a node
 * offers a few MIG shapes at most. */
#define DD_KUBE_MAX_GPU_RESOURCES 16u
/* A resourceVersion: etcd revisions are 20 digits at most; opaque strings
 * from other stores are short too. */
#define DD_KUBE_MAX_RV 128u
/* A list's continue token: base64 of a key and a version, well under 1 KiB
 * in kube-apiserver; 4 KiB leaves room. */
#define DD_KUBE_MAX_CONTINUE 4096u
/* One watch event line: etcd keeps objects up to 1.5 MiB, JSON may be
 * larger; a line past 16 MiB is not an event (the watch restarts). */
#define DD_KUBE_MAX_EVENT_BYTES (16u << 20)
/* Items asked per list page: client-go's reflector uses 500. */
#define DD_KUBE_LIST_LIMIT 500u

#endif
