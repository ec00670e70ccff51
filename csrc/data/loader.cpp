// The loader: worker threads fill whole batches (decode, flip, normalise to NCHW float) into
// a bounded ring of prefetched batches; afc_loader_next copies them out in order.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/dataset.h"

namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Slot {
  std::vector<float> input;
  std::vector<int64_t> labels;
  bool ready = false;
  afc_status status = AFC_OK;
  std::string error;
};

}  // namespace

struct afc_loader {
  afc_dataset *ds = nullptr;
  int32_t batch = 0, width = 0, height = 0, rank = 0, world = 1, flags = 0;
  uint64_t seed = 0;
  int64_t steps = 0, epoch = 0;
  std::vector<int64_t> order;  // this rank's dataset indices for the epoch, steps × batch
  std::vector<Slot> slots;
  float lut[256];  // (x / 255 - 0.5) / 0.5 in float32, as torchvision computes it

  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  int64_t next_claim = 0, consumed = 0, generation = 0;
  int active = 0;
  bool stop = false;
  std::vector<std::thread> threads;
  std::atomic<int64_t> resized{0}, skipped{0};
  std::string last_error;

  void plan(int64_t e);
  // Per worker thread: decode buffers reused from batch to batch (no allocation per batch
  // once they have grown to the largest image).
  struct Scratch {
    std::vector<uint8_t> rgb, buf;
    afc::Image img;
  };
  void fill(Slot &s, int64_t b, int64_t epoch_of_batch, Scratch &scratch);
  void work();
};

// DistributedSampler order: permutation (seed + epoch), padded by repeating its start to a
// multiple of world, strided by rank, then cut to whole batches (drop_last).
void afc_loader::plan(int64_t e) {
  const int64_t n = ds->size();
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  if (flags & AFC_LOADER_SHUFFLE) {
    uint64_t state = mix(seed) ^ mix((uint64_t)e + 0x51ed27ull);
    for (int64_t i = n - 1; i > 0; i--) {
      state = mix(state);
      std::swap(perm[i], perm[(int64_t)(state % (uint64_t)(i + 1))]);
    }
  }
  const int64_t per_rank = (n + world - 1) / world;
  order.resize(steps * batch);
  for (int64_t k = 0; k < steps * batch; k++) order[k] = perm[(k * world + rank) % n];
  (void)per_rank;
  epoch = e;
}

void afc_loader::fill(Slot &s, int64_t b, int64_t ep, Scratch &scratch) {
  const int64_t plane = (int64_t)width * height, n = ds->size();
  std::vector<uint8_t> &rgb = scratch.rgb, &buf = scratch.buf;
  afc::Image &img = scratch.img;
  rgb.resize(plane * 3);
  s.status = AFC_OK;
  s.error.clear();
  for (int64_t j = 0; j < batch; j++) {
    const int64_t pos = b * batch + j;
    int64_t idx = order[pos];
    for (int64_t attempt = 0;; attempt++) {
      try {
        if (ds->load(idx, width, height, rgb.data(), buf, img)) resized++;
        break;
      } catch (const afc::Error &e) {
        if (!(ds->flags & AFC_DATASET_SKIP_CORRUPT) || attempt + 1 >= n) {
          s.status = e.status;
          s.error = e.message;
          return;
        }
        skipped++;
        idx = (idx + 1) % n;  // a neighbour stands in so that the batch stays full
      }
    }
    s.labels[j] = ds->label(idx);
    // Flip from (seed, epoch, global position): the same whatever thread does the work.
    const uint64_t gpos = (uint64_t)(pos * world + rank);
    const bool flip = (flags & AFC_LOADER_FLIP) && (mix(mix(seed ^ 0xf11full) ^ mix((uint64_t)ep) ^ gpos) & 1);
    float *out = s.input.data() + j * 3 * plane;
    for (int32_t y = 0; y < height; y++) {
      const uint8_t *row = rgb.data() + (int64_t)y * width * 3;
      float *r = out + (int64_t)y * width, *g = r + plane, *bl = g + plane;
      for (int32_t x = 0; x < width; x++) {
        const uint8_t *px = row + 3 * (flip ? width - 1 - x : x);
        r[x] = lut[px[0]], g[x] = lut[px[1]], bl[x] = lut[px[2]];
      }
    }
  }
}

void afc_loader::work() {
  Scratch scratch;
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    if (next_claim < steps && next_claim < consumed + (int64_t)slots.size()) {
      const int64_t b = next_claim++, gen = generation, ep = epoch;
      Slot &s = slots[b % slots.size()];
      active++;
      lock.unlock();
      fill(s, b, ep, scratch);
      lock.lock();
      active--;
      if (gen == generation) s.ready = true;
      done_cv.notify_all();
    } else {
      work_cv.wait(lock);
    }
  }
}

extern "C" {

AFC_API afc_status afc_loader_create(afc_dataset_t *dataset, int32_t batch_size, int32_t width, int32_t height,
                                     int32_t rank, int32_t world_size, uint64_t seed, int32_t flags,
                                     int32_t num_threads, int32_t prefetch, afc_loader_t **out) {
  return AFC_GUARD({
    AFC_CHECK(dataset && out, AFC_ERR_INVALID_ARGUMENT, "dataset or out is NULL");
    AFC_CHECK(batch_size > 0 && width > 0 && height > 0 && width <= 4096 && height <= 4096,
              AFC_ERR_INVALID_ARGUMENT, "batch_size %d, width %d, height %d: expected positive values (size <= 4096)",
              batch_size, width, height);
    AFC_CHECK(world_size > 0 && rank >= 0 && rank < world_size, AFC_ERR_INVALID_ARGUMENT,
              "rank %d is not in 0..world_size-1 (world_size %d)", rank, world_size);
    AFC_CHECK(num_threads > 0 && num_threads <= 256 && prefetch > 0 && prefetch <= 64, AFC_ERR_INVALID_ARGUMENT,
              "num_threads %d and prefetch %d must be in 1..256 and 1..64", num_threads, prefetch);
    const int64_t n = dataset->size(), per_rank = (n + world_size - 1) / world_size;
    AFC_CHECK(per_rank >= batch_size, AFC_ERR_INVALID_ARGUMENT,
              "cannot make one batch of %d from \"%s\": %lld images give %lld per rank over %d ranks", batch_size,
              dataset->path.c_str(), (long long)n, (long long)per_rank, world_size);
    auto l = std::make_unique<afc_loader>();
    l->ds = dataset, l->batch = batch_size, l->width = width, l->height = height;
    l->rank = rank, l->world = world_size, l->seed = seed, l->flags = flags;
    l->steps = per_rank / batch_size;
    for (int v = 0; v < 256; v++) l->lut[v] = ((float)v / 255.0f - 0.5f) / 0.5f;
    l->slots.resize(prefetch);
    for (auto &s : l->slots) {
      s.input.resize((size_t)batch_size * 3 * width * height);
      s.labels.resize(batch_size);
    }
    l->plan(0);
    for (int t = 0; t < num_threads; t++) l->threads.emplace_back([p = l.get()] { p->work(); });
    *out = l.release();
  });
}

AFC_API void afc_loader_destroy(afc_loader_t *l) {
  if (!l) return;
  {
    std::lock_guard<std::mutex> lock(l->mu);
    l->stop = true;
  }
  l->work_cv.notify_all();
  for (auto &t : l->threads) t.join();
  delete l;
}

AFC_API afc_status afc_loader_steps(const afc_loader_t *l, int64_t *steps) {
  return AFC_GUARD({
    AFC_CHECK(l && steps, AFC_ERR_INVALID_ARGUMENT, "loader or steps is NULL");
    *steps = l->steps;
  });
}

AFC_API afc_status afc_loader_set_epoch(afc_loader_t *l, int64_t epoch) {
  return AFC_GUARD({
    AFC_CHECK(l, AFC_ERR_INVALID_ARGUMENT, "loader is NULL");
    AFC_CHECK(epoch >= 0, AFC_ERR_INVALID_ARGUMENT, "epoch %lld is negative", (long long)epoch);
    std::unique_lock<std::mutex> lock(l->mu);
    l->generation++;
    l->next_claim = l->steps;  // no new claims while the old epoch drains
    l->done_cv.wait(lock, [&] { return l->active == 0; });
    for (auto &s : l->slots) s.ready = false;
    l->plan(epoch);
    l->next_claim = 0, l->consumed = 0;
    l->work_cv.notify_all();
  });
}

AFC_API afc_status afc_loader_next(afc_loader_t *l, float *input, int64_t input_count, int64_t *labels,
                                   int64_t label_count, int64_t *filled) {
  return AFC_GUARD({
    AFC_CHECK(l && filled, AFC_ERR_INVALID_ARGUMENT, "loader or filled is NULL");
    const int64_t want = (int64_t)l->batch * 3 * l->width * l->height;
    AFC_CHECK(input && input_count == want, AFC_ERR_SHAPE, "input holds %lld floats: expected %d×3×%d×%d = %lld",
              (long long)input_count, l->batch, l->height, l->width, (long long)want);
    AFC_CHECK(labels && label_count == l->batch, AFC_ERR_SHAPE, "labels holds %lld values: expected %d",
              (long long)label_count, l->batch);
    std::unique_lock<std::mutex> lock(l->mu);
    if (l->consumed >= l->steps) {
      *filled = 0;
      return;
    }
    Slot &s = l->slots[l->consumed % l->slots.size()];
    l->done_cv.wait(lock, [&] { return s.ready; });
    lock.unlock();  // the slot is ours until consumed moves on
    const afc_status st = s.status;
    const std::string err = s.error;
    if (st == AFC_OK) {
      memcpy(input, s.input.data(), sizeof(float) * want);
      memcpy(labels, s.labels.data(), sizeof(int64_t) * l->batch);
    }
    lock.lock();
    s.ready = false;
    l->consumed++;
    l->work_cv.notify_all();
    lock.unlock();
    if (st != AFC_OK) {
      l->last_error = "afc_loader_next: " + err;
      AFC_FAIL(st, "%s", err.c_str());
    }
    *filled = l->batch;
  });
}

AFC_API afc_status afc_loader_error(const afc_loader_t *l, char *buf, int64_t capacity, int64_t *needed) {
  return AFC_GUARD({
    AFC_CHECK(l && needed, AFC_ERR_INVALID_ARGUMENT, "loader or needed is NULL");
    const std::string &s = l->last_error;
    if (buf && capacity > 0) {
      const size_t n = std::min<size_t>(s.size(), (size_t)capacity - 1);
      memcpy(buf, s.data(), n);
      buf[n] = 0;
    }
    *needed = (int64_t)s.size() + 1;
  });
}

AFC_API afc_status afc_loader_counters(const afc_loader_t *l, int64_t *resized, int64_t *skipped) {
  return AFC_GUARD({
    AFC_CHECK(l, AFC_ERR_INVALID_ARGUMENT, "loader is NULL");
    if (resized) *resized = l->resized.load();
    if (skipped) *skipped = l->skipped.load();
  });
}

}  // extern "C"
