// imgpipe-link-delay: one direction of an emulated long, lossy link. This kernel has no netem
// (../shared/notes/links-on-this-machine.md), so packets go through NFQUEUE instead: each one is
// held for the one-way delay, or dropped with the given probability, and released with an ACCEPT
// verdict when its time has come. Only the packet's id is read (COPY_META): no payload crosses.
//
//   imgpipe-link-delay QUEUE DELAY_MS [LOSS_PERCENT [PARAMS_FILE]]
//
// On SIGHUP it reads "DELAY_MS LOSS_PERCENT" from PARAMS_FILE and applies them to the packets
// that arrive from then on, without letting go of the queue (restarting the program would let
// packets through undelayed for a moment, and reorder them against the held ones).
// Wired by NetTopology (netns.h) in the RECEIVING namespace:
//   iptables-legacy -t mangle -A PREROUTING -i DEV -j NFQUEUE --queue-num QUEUE --queue-bypass
// (held packets at the sender would count against TCP Small Queues and collapse throughput).
// Prints "ready" once the queue is bound; on SIGTERM releases what it holds and prints counts.
// Built on the technique of ../shared/tools/lp-delay.c.
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t stopping = 0;
volatile sig_atomic_t reload = 0;
void onSignal(int) {
  stopping = 1;
}
void onHangup(int) {
  reload = 1;
}

struct Held {
  std::uint32_t id;
  Clock::time_point due;
};

struct State {
  Clock::duration delay{};
  double loss = 0;  // probability, 0..1
  std::mt19937_64 random{std::random_device{}()};
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  std::deque<Held> held;  // in arrival order, so in due order: one fixed delay
  unsigned long long in = 0, dropped = 0;
};

int onPacket(nfq_q_handle* queue, nfgenmsg*, nfq_data* packet, void* data) {
  auto& s = *static_cast<State*>(data);
  const std::uint32_t id = ntohl(nfq_get_msg_packet_hdr(packet)->packet_id);
  ++s.in;
  if (s.loss > 0 && s.uniform(s.random) < s.loss) {
    ++s.dropped;
    return nfq_set_verdict(queue, id, NF_DROP, 0, nullptr);
  }
  s.held.push_back({id, Clock::now() + s.delay});
  return 0;
}

struct HandleCloser {
  void operator()(nfq_handle* h) const { nfq_close(h); }
};
struct QueueCloser {
  void operator()(nfq_q_handle* q) const { nfq_destroy_queue(q); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s QUEUE DELAY_MS [LOSS_PERCENT]\n", argv[0]);
    return 2;
  }
  const int queueNumber = std::atoi(argv[1]);
  State s;
  s.delay = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(std::atof(argv[2])));
  s.loss = argc > 3 ? std::atof(argv[3]) / 100.0 : 0.0;
  ::signal(SIGTERM, onSignal);
  ::signal(SIGINT, onSignal);
  const char* paramsFile = argc > 4 ? argv[4] : nullptr;
  struct sigaction hup {};
  hup.sa_handler = onHangup;  // no SA_RESTART: poll returns EINTR and the loop reloads
  ::sigaction(SIGHUP, &hup, nullptr);

  std::unique_ptr<nfq_handle, HandleCloser> handle(nfq_open());
  if (!handle) {
    std::perror("imgpipe-link-delay: nfq_open");
    return 1;
  }
  std::unique_ptr<nfq_q_handle, QueueCloser> queue(
      nfq_create_queue(handle.get(), static_cast<std::uint16_t>(queueNumber), &onPacket, &s));
  if (!queue) {
    std::perror("imgpipe-link-delay: nfq_create_queue");
    return 1;
  }
  if (nfq_set_mode(queue.get(), NFQNL_COPY_META, 0) < 0) {
    std::perror("imgpipe-link-delay: nfq_set_mode");
    return 1;
  }
  nfq_set_queue_maxlen(queue.get(), 60000);
  nfq_set_queue_flags(queue.get(), NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
  const int fd = nfq_fd(handle.get());
  int size = 16 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  int one = 1;
  ::setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  std::printf("ready queue %d delay %s ms loss %s %%\n", queueNumber, argv[2],
              argc > 3 ? argv[3] : "0");
  std::fflush(stdout);

  static char buffer[65536];
  while (!stopping) {
    if (reload && paramsFile) {
      reload = 0;
      double delayMs = 0, lossPercent = 0;
      if (std::FILE* f = std::fopen(paramsFile, "r")) {
        if (std::fscanf(f, "%lf %lf", &delayMs, &lossPercent) == 2) {
          s.delay = std::chrono::duration_cast<Clock::duration>(
              std::chrono::duration<double, std::milli>(delayMs));
          s.loss = lossPercent / 100.0;
          std::printf("now delay %g ms loss %g %%\n", delayMs, lossPercent);
          std::fflush(stdout);
        }
        std::fclose(f);
      }
    }
    int timeout = -1;
    if (!s.held.empty()) {
      const auto wait = s.held.front().due - Clock::now();
      timeout = wait <= Clock::duration::zero()
                    ? 0
                    : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, timeout);
    if (r < 0 && errno != EINTR) {
      std::perror("imgpipe-link-delay: poll");
      break;
    }
    if (r > 0 && (p.revents & POLLIN)) {
      for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n <= 0) break;
        nfq_handle_packet(handle.get(), buffer, static_cast<int>(n));
      }
    }
    const auto now = Clock::now();
    while (!s.held.empty() && s.held.front().due <= now) {
      nfq_set_verdict(queue.get(), s.held.front().id, NF_ACCEPT, 0, nullptr);
      s.held.pop_front();
    }
  }
  for (const auto& h : s.held)
    nfq_set_verdict(queue.get(), h.id, NF_ACCEPT, 0, nullptr);
  std::printf("queue %d: in %llu dropped %llu\n", queueNumber, s.in, s.dropped);
  return 0;
}
