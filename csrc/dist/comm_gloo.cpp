// Collectives between processes with Gloo's TCP transport. Rendezvous goes through a store
// (a directory, or Redis) under a per-run namespace, so leftovers of killed runs and
// concurrent runs on the same store never mix. Every wait is bounded by the timeout, and a
// failure names the ranks that are missing or gone.
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/comm.h"

#ifdef AFC_HAVE_GLOO
#define HIREDIS_NESTED_INCLUDE
#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/redis_store.h>
#include <gloo/transport/tcp/device.h>
#endif

namespace afc {

#ifndef AFC_HAVE_GLOO

std::unique_ptr<Comm> make_gloo_comm(const char *, const char *, int, int world_size, int64_t,
                                     const char *) {
  AFC_FAIL(AFC_ERR_UNSUPPORTED,
           "a world of %d processes needs Gloo, which this library was built without "
           "(install libgloo-dev and rebuild)", world_size);
}

#else

namespace {

using Clock = std::chrono::steady_clock;

// Where a rank runs, to tell later whether it is still alive.
struct Peer {
  std::string host;
  long pid = 0;
};

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

void make_dirs(const std::string &path) {
  for (size_t i = 1; i <= path.size(); i++) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (mkdir(part.c_str(), 0777) != 0 && errno != EEXIST)
        AFC_FAIL(AFC_ERR_IO, "Cannot create store directory \"%s\": %s", part.c_str(), strerror(errno));
    }
  }
}

std::string join_ranks(const std::vector<int> &ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); i++) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// One store per communicator: the base store plus the run's namespace.
struct Store {
  std::string url;   // as given, for messages
  std::string path;  // file store: the run's directory (removed once everyone connected)
  std::unique_ptr<gloo::rendezvous::Store> base;
  std::unique_ptr<gloo::rendezvous::Store> ns;  // what rendezvous uses

  gloo::rendezvous::Store &get() { return ns ? *ns : *base; }

  // True when the key is present, after a wait of about a millisecond (Gloo reads a timeout
  // of 0 as "wait forever").
  bool has(const std::string &key) {
    try {
      get().wait({key}, std::chrono::milliseconds(1));
      return true;
    } catch (const gloo::IoException &) {
      return false;
    }
  }
};

// Gloo's Redis store waits on its server without a limit: a server that accepts and never
// answers would hang the rendezvous. Here every reply must come within `timeout`.
class BoundedRedisStore final : public gloo::rendezvous::RedisStore {
 public:
  BoundedRedisStore(const std::string &host, int port, std::chrono::milliseconds timeout)
      : RedisStore(host, port) {
    const timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    redisSetTimeout(redis_, tv);
  }
};

Store open_store(const std::string &url, const std::string &run_id, Clock::time_point deadline,
                 int64_t timeout_ms) {
  Store s;
  s.url = url;
  if (url.rfind("redis://", 0) == 0) {
    std::string hostport = url.substr(8);
    while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
    size_t colon = hostport.rfind(':');
    std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    int port = 6379;
    if (colon != std::string::npos) {
      char *end = nullptr;
      long p = strtol(hostport.c_str() + colon + 1, &end, 10);
      AFC_CHECK(*end == 0 && p > 0 && p < 65536, AFC_ERR_INVALID_ARGUMENT,
                "Invalid store \"%s\": port is not a number in 1..65535 (expected redis://host:port)",
                url.c_str());
      port = static_cast<int>(p);
    }
    AFC_CHECK(!host.empty(), AFC_ERR_INVALID_ARGUMENT,
              "Invalid store \"%s\": no host (expected redis://host:port)", url.c_str());
    // The Redis server may come up after us: retry the connection until the deadline.
    std::string last;
    for (int delay_ms = 10;; delay_ms = std::min(delay_ms * 2, 500)) {
      try {
        s.base = std::make_unique<BoundedRedisStore>(host, port, std::chrono::milliseconds(timeout_ms));
        break;
      } catch (const std::exception &e) {
        last = e.what();
      }
      if (Clock::now() >= deadline)
        AFC_FAIL(AFC_ERR_TIMEOUT, "Cannot reach store \"%s\" within %lld ms: %s (start redis-server there)",
                 url.c_str(), (long long)timeout_ms, last.c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    s.ns = std::make_unique<gloo::rendezvous::PrefixStore>("afc/" + run_id, *s.base);
  } else {
    std::string dir = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
    AFC_CHECK(!dir.empty(), AFC_ERR_INVALID_ARGUMENT,
              "Invalid store \"\": expected a directory or redis://host:port");
    struct stat st;
    AFC_CHECK(stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), AFC_ERR_NOT_FOUND,
              "store directory \"%s\" does not exist: create it (on a filesystem every machine sees), or use "
              "redis://host:port",
              dir.c_str());
    // FileStore maps a key to a file name, so the namespace is a subdirectory.
    s.path = dir + "/" + run_id;
    make_dirs(s.path);
    s.base = std::make_unique<gloo::rendezvous::FileStore>(s.path);
  }
  return s;
}

// True when process `pid` no longer runs: absent, or a zombie waiting to be reaped.
bool process_gone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  FILE *f = fopen(path, "r");
  if (!f) return true;
  char line[512] = {0};
  const bool read = fgets(line, sizeof(line), f) != nullptr;
  fclose(f);
  const char *close = read ? strrchr(line, ')') : nullptr;  // the name may hold spaces
  return close && (close[2] == 'Z' || close[2] == 'X');
}

// Checks that `addr` (an interface, host name or IP) is an address of this machine: Gloo
// crashes on a name it cannot resolve, and reports one it cannot bind as a lost peer.
void check_listen_address(const std::string &addr) {
  if (if_nametoindex(addr.c_str()) != 0) return;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  const int rc = getaddrinfo(addr.c_str(), nullptr, &hints, &res);
  AFC_CHECK(rc == 0, AFC_ERR_INVALID_ARGUMENT,
            "address \"%s\" is neither a network interface nor a host name that resolves (%s): give this "
            "machine's IP, host name or interface (`ip -brief address` lists them)",
            addr.c_str(), gai_strerror(rc));
  const int fd = socket(res->ai_family, SOCK_STREAM, 0);
  const bool bound = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0;
  const int err = errno;
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  AFC_CHECK(bound, AFC_ERR_INVALID_ARGUMENT,
            "address \"%s\" cannot be listened on here (%s): give one of this machine's own addresses "
            "(`ip -brief address` lists them)",
            addr.c_str(), strerror(err));
}

class GlooComm final : public Comm {
 public:
  GlooComm(const char *store, const char *run_id, int rank, int world_size, int64_t timeout_ms,
           const char *address)
      : rank_(rank), size_(world_size), timeout_ms_(timeout_ms), run_id_(run_id) {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto deadline = Clock::now() + timeout;
    const std::string addr = address && *address ? address : "127.0.0.1";
    check_listen_address(addr);
    store_ = open_store(store, run_id_, deadline, timeout_ms);

    // Arrival: announce ourselves, then wait for everyone with backoff, so that a missing
    // rank is reported by number rather than as an opaque key.
    std::string me = host_name() + " " + std::to_string(static_cast<long>(getpid()));
    try {
      store_.get().set(arrive_key(rank_), std::vector<char>(me.begin(), me.end()));
    } catch (const std::exception &e) {
      // A store that holds the key refused it; any other failure is the store's own.
      if (!store_.has(arrive_key(rank_)))
        AFC_FAIL(AFC_ERR_TIMEOUT,
                 "Cannot join run \"%s\" as rank %d: store \"%s\" failed or did not answer within %lld ms (is a "
                 "Redis server listening there?): %s",
                 run_id_.c_str(), rank_, store_.url.c_str(), (long long)timeout_ms_, e.what());
      const std::string clear = store_.path.empty() ? "clear the store" : "remove " + store_.path;
      AFC_FAIL(AFC_ERR_STATE,
               "Cannot join run \"%s\" as rank %d: store \"%s\" already holds that rank (an earlier run with "
               "this run id, or two processes given rank %d): use a new run id (--run-id, or ARCFACE_RUN_ID), "
               "or %s",
               run_id_.c_str(), rank_, store_.url.c_str(), rank_, clear.c_str());
    }
    std::vector<int> missing;
    for (int delay_ms = 10;; delay_ms = std::min(delay_ms * 2, 500)) {
      missing.clear();
      for (int r = 0; r < size_; r++)
        if (!store_.has(arrive_key(r))) missing.push_back(r);
      if (missing.empty()) break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        // Leave a directory store as it was, so that the same run id can be tried again.
        if (!store_.path.empty()) forget_arrival(store_.path, me);
        AFC_FAIL(AFC_ERR_TIMEOUT,
                 "Cannot join run \"%s\" as rank %d of %d: rank(s) %s did not arrive at store \"%s\" "
                 "within %lld ms (start every rank with the same store and run id, or raise the timeout)",
                 run_id_.c_str(), rank_, size_, join_ranks(missing).c_str(), store_.url.c_str(),
                 (long long)timeout_ms_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(delay_ms, left.count())));
    }
    peers_.resize(size_);
    for (int r = 0; r < size_; r++) {
      std::vector<char> v = store_.get().get(arrive_key(r));
      std::string text(v.begin(), v.end());
      size_t sp = text.rfind(' ');
      peers_[r].host = text.substr(0, sp);
      peers_[r].pid = sp == std::string::npos ? 0 : atol(text.c_str() + sp + 1);
    }

    gloo::transport::tcp::attr attr;
    if (if_nametoindex(addr.c_str()) != 0)
      attr.iface = addr;
    else
      attr.hostname = addr;
    try {
      auto dev = gloo::transport::tcp::CreateDevice(attr);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      ctx->setTimeout(timeout);
      ctx->connectFullMesh(store_.get(), dev);
      ctx_ = ctx;
    } catch (const std::exception &e) {
      fail("connect", e);
    }
    // Everyone is connected: the run's directory is no longer needed.
    barrier();
    if (rank_ == 0 && !store_.path.empty()) remove_dir(store_.path);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }

  void all_reduce(float *data, int64_t count, ReduceOp op) override { reduce(data, count, op, "all-reduce"); }
  void all_reduce(int64_t *data, int64_t count, ReduceOp op) override { reduce(data, count, op, "all-reduce"); }

  void all_gather(const float *in, int64_t count, float *out) override { gather(in, count, out); }
  void all_gather(const int64_t *in, int64_t count, int64_t *out) override { gather(in, count, out); }

  void all_gather_v(const float *in, const int64_t *counts, float *out) override { gather_v(in, counts, out); }
  void all_gather_v(const int64_t *in, const int64_t *counts, int64_t *out) override {
    gather_v(in, counts, out);
  }

  void broadcast(float *data, int64_t count, int root) override { bcast(data, count, root); }
  void broadcast(int64_t *data, int64_t count, int root) override { bcast(data, count, root); }

  void barrier() override {
    run("barrier", [&] {
      gloo::BarrierOptions opts(ctx_);
      gloo::barrier(opts);
    });
  }

 private:
  static std::string arrive_key(int r) { return "arrive_" + std::to_string(r); }

  static void remove_dir(const std::string &path) {
    // Only the flat files FileStore writes live there.
    if (DIR *d = opendir(path.c_str())) {
      while (dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink((path + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(path.c_str());
  }

  // Removes the arrival key whose value is `me` (this process) from a directory store, and
  // the directory once it is empty.
  static void forget_arrival(const std::string &path, const std::string &me) {
    if (DIR *d = opendir(path.c_str())) {
      while (dirent *e = readdir(d)) {
        if (e->d_type != DT_REG) continue;
        const std::string file = path + "/" + e->d_name;
        std::ifstream in(file, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (text == me) unlink(file.c_str());
      }
      closedir(d);
    }
    rmdir(path.c_str());
  }

  template <typename T>
  void reduce(T *data, int64_t count, ReduceOp op, const char *what) {
    if (count == 0) return;
    run(what, [&] {
      gloo::AllreduceOptions opts(ctx_);
      opts.setOutput(data, static_cast<size_t>(count));
      using Fn = void (*)(void *, const void *, const void *, size_t);
      Fn sum = &gloo::sum<T>, max = &gloo::max<T>;
      Fn fn = op == ReduceOp::Sum ? sum : max;
      opts.setReduceFunction(fn);
      opts.setTag(next_tag());
      gloo::allreduce(opts);
    });
  }

  template <typename T>
  void gather(const T *in, int64_t count, T *out) {
    if (count == 0) return;
    run("all-gather", [&] {
      gloo::AllgatherOptions opts(ctx_);
      opts.setInput(const_cast<T *>(in), static_cast<size_t>(count));
      opts.setOutput(out, static_cast<size_t>(count) * size_);
      opts.setTag(next_tag());
      gloo::allgather(opts);
    });
  }

  template <typename T>
  void gather_v(const T *in, const int64_t *counts, T *out) {
    std::vector<size_t> elems(counts, counts + size_);
    size_t total = 0;
    for (size_t e : elems) total += e;
    if (total == 0) return;
    // Gloo wants a non-null pointer even for an empty contribution.
    T dummy{};
    run("all-gather-v", [&] {
      gloo::AllgathervOptions opts(ctx_);
      opts.setInput(const_cast<T *>(in ? in : &dummy), elems[rank_]);
      opts.setOutput(out, elems);
      opts.setTag(next_tag());
      gloo::allgatherv(opts);
    });
  }

  template <typename T>
  void bcast(T *data, int64_t count, int root) {
    if (count == 0) return;
    run("broadcast", [&] {
      gloo::BroadcastOptions opts(ctx_);
      opts.setOutput(data, static_cast<size_t>(count));
      opts.setRoot(root);
      opts.setTag(next_tag());
      gloo::broadcast(opts);
    });
  }

  uint32_t next_tag() { return tag_++; }

  // Runs one collective; once one has failed the world is broken and later calls say so.
  template <typename F>
  void run(const char *what, F &&body) {
    if (!broken_.empty())
      AFC_FAIL(AFC_ERR_STATE, "Cannot %s: the communicator failed earlier (%s)", what, broken_.c_str());
    try {
      body();
    } catch (const Error &) {
      throw;
    } catch (const std::exception &e) {
      fail(what, e);
    }
  }

  // Turns a Gloo failure into AFC_ERR_TIMEOUT naming the ranks that are gone when we can
  // tell (same host, process no longer running), else the ranks we talk to.
  [[noreturn]] void fail(const char *what, const std::exception &e) {
    std::vector<int> gone;
    std::string self = host_name();
    // A killed peer's sockets close before its process is reaped: look a few times.
    for (int attempt = 0; attempt < 10 && gone.empty(); attempt++) {
      if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (int r = 0; r < static_cast<int>(peers_.size()); r++) {
        if (r == rank_ || peers_[r].host != self || peers_[r].pid <= 0) continue;
        if (process_gone(static_cast<pid_t>(peers_[r].pid))) gone.push_back(r);
      }
    }
    std::string who = gone.empty()
                          ? "a peer stopped answering"
                          : "lost rank(s) " + join_ranks(gone) + " (process exited)";
    std::string text = e.what();
    for (char &c : text)
      if (c == '\n') c = ' ';
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s in run \"%s\" (rank %d of %d, store \"%s\", timeout %lld ms): %s", who.c_str(),
             run_id_.c_str(), rank_, size_, store_.url.c_str(), (long long)timeout_ms_, text.c_str());
    broken_ = buf;
    AFC_FAIL(AFC_ERR_TIMEOUT, "Cannot %s: %s", what, buf);
  }

  int rank_, size_;
  int64_t timeout_ms_;
  std::string run_id_;
  Store store_;
  std::vector<Peer> peers_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 1;
  std::string broken_;
};

}  // namespace

std::unique_ptr<Comm> make_gloo_comm(const char *store, const char *run_id, int rank, int world_size,
                                     int64_t timeout_ms, const char *address) {
  return std::make_unique<GlooComm>(store, run_id, rank, world_size, timeout_ms, address);
}

#endif  // AFC_HAVE_GLOO

}  // namespace afc
