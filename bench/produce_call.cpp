// librdkafka's own cost per message on the producing thread, through its C API: the floor
// under confluent-kafka's Producer.produce() (bench/bench_produce_call.py builds and runs it).
// Usage: produce_call MESSAGES_PER_ROUND ROUNDS VALUE_BYTES HEADERS
// Prints: <µs per produceva() call> <µs per message of the poll() that serves its report>
#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

namespace {

double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t*, void*) {}

bool set(rd_kafka_conf_t* conf, const char* key, const char* value) {
  char error[256];
  if (rd_kafka_conf_set(conf, key, value, error, sizeof error) == RD_KAFKA_CONF_OK) return true;
  std::fprintf(stderr, "%s: %s\n", key, error);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MESSAGES ROUNDS VALUE_BYTES HEADERS\n", argv[0]);
    return 2;
  }
  const int messages = std::atoi(argv[1]), rounds = std::atoi(argv[2]);
  const size_t value_bytes = std::strtoul(argv[3], nullptr, 10);
  const int headers = std::atoi(argv[4]);
  // As the sink's producer, with no broker: nothing is sent, so only this thread's work counts
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!(set(conf, "bootstrap.servers", "127.0.0.1:1") && set(conf, "enable.idempotence", "true") &&
        set(conf, "queue.buffering.max.messages", "10000000") &&
        set(conf, "queue.buffering.max.kbytes", "4000000") && set(conf, "log_level", "0")))
    return 2;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char error[256];
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (producer == nullptr) {
    std::fprintf(stderr, "%s\n", error);
    return 2;
  }
  std::vector<char> value(value_bytes, 'x');
  const char* names[] = {"fh.schema", "fh.version", "fh.encoding", "fh.instance",
                         "fh.count", "fh.epoch", "fh.seq.first", "fh.seq.last"};
  double produce_s = 0, poll_s = 0;
  const int warm_up = rounds / 10;
  for (int round = 0; round < rounds; ++round) {
    const double start = thread_cpu_s();
    for (int i = 0; i < messages; ++i) {
      rd_kafka_vu_t args[4];
      args[0].vtype = RD_KAFKA_VTYPE_TOPIC;
      args[0].u.cstr = "t";
      args[1].vtype = RD_KAFKA_VTYPE_KEY;
      args[1].u.mem = {const_cast<char*>("SYM001USDT"), 10};
      args[2].vtype = RD_KAFKA_VTYPE_VALUE;  // copied (RD_KAFKA_MSG_F_COPY), as confluent-kafka does
      args[2].u.mem = {value.data(), value.size()};
      size_t count = 3;
      if (headers > 0) {  // built per message, as the sink's differ per message
        rd_kafka_headers_t* list = rd_kafka_headers_new(static_cast<size_t>(headers));
        const std::string id = std::to_string(1'000'000'000LL + i);
        for (int h = 0; h < headers; ++h)
          rd_kafka_header_add(list, names[h % 8], -1, id.data(), static_cast<ssize_t>(id.size()));
        args[3].vtype = RD_KAFKA_VTYPE_HEADERS;
        args[3].u.headers = list;
        count = 4;
      }
      if (rd_kafka_error_t* failed = rd_kafka_produceva(producer, args, count)) {
        std::fprintf(stderr, "produceva: %s\n", rd_kafka_error_string(failed));
        return 1;
      }
    }
    const double produced = thread_cpu_s();
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE);  // each report: _PURGE_QUEUE
    const double purged = thread_cpu_s();
    rd_kafka_poll(producer, 0);
    if (round >= warm_up) {
      produce_s += produced - start;
      poll_s += thread_cpu_s() - purged;
    }
  }
  const double counted = static_cast<double>(messages) * (rounds - warm_up);
  std::printf("%.3f %.3f\n", produce_s / counted * 1e6, poll_s / counted * 1e6);
  rd_kafka_destroy(producer);
  return 0;
}
