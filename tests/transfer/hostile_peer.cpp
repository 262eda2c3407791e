// hostile_peer: a real process holding a real CurveZMQ key that misbehaves on command, for the
// transfer plane's trust tests (hostile_test.cpp). Never installed.
//
//   hostile_peer flood      --to EP --server-key PUB --key KEY --artifact ID --count N --hold S
//       asks N times for chunk 0 (each request repeating the index) and never reads
//   hostile_peer bigframe   --to EP --server-key PUB --key KEY
//       sends one 64 MiB frame; prints "dropped" when the server closes the connection
//   hostile_peer signatures --to EP --server-key PUB --key KEY --target ID --count N
//       uploads N junk signatures under made-up basis ids (and some hostile ones), asks for
//       deltas from them, leaves some uploads unfinished
//   hostile_peer connections --to EP --server-key PUB --key KEY --artifact ID --connections N
//                            --chunks K --manifests M --hold S
//       opens N connections with the one key; on each asks for chunks 0..K-1 of ID and for M
//       manifests of made-up ids (parked: not here yet), and never reads
//   hostile_peer uploaded-delta --to EP --server-key PUB --key KEY --target ID --basis-file F
//       a real librsync signature of F uploaded under a made-up basis id; waits for the delta
//       and fetches every chunk of it. Prints "delta ID chunks N received M bytes B"
//   hostile_peer upstream   --listen EP --key KEY --file F --name N --version V --mode M
//                           [--value-hex HEX]
//       an upstream artifact server whose answers carry the hostile value (hex-encoded, so it
//       may hold a NUL) in the field the mode names: manifest-id, manifest-name, chunk-id,
//       delta-id, delta-basis, bigframe. Prints "artifact ID" and "digest D" of what it offers.
#include <zmq.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "common/hash.h"
#include "common/net/curve_keys.h"
#include "common/net/zap_handler.h"
#include "protocol/ids.h"
#include "transfer/delta.h"
#include "transfer/fetch_session.h"
#include "transfer/manifest.h"
#include "transfer/transfer_wire.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
using Body = proto::TransferMessage::Body;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string fromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

capnp::Text::Reader text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());  // every byte, a NUL too
}

std::string randomHex(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (auto& c : s)
    c = kHex[rng() % 16];
  return s;
}

// A DEALER holding `key`, connected to `to`, with a monitor for connection events.
struct Client {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
  zmq::socket_t monitor{context, zmq::socket_type::pair};

  Client(const std::string& to, const std::string& serverKey, const net::CurveKeyPair& key,
         bool reads = false) {
    net::configureCurveClient(socket, key.publicKey, key.secretKey, serverKey);
    if (!reads) {
      // Read as little as possible: what the server sends stays queued on its side.
      socket.set(zmq::sockopt::rcvhwm, 1);
      socket.set(zmq::sockopt::rcvbuf, 4096);
    }
    socket.set(zmq::sockopt::linger, 0);
    zmq_socket_monitor(socket.handle(), "inproc://hostile-monitor",
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED);
    monitor.connect("inproc://hostile-monitor");
    socket.connect(to);
  }
  ~Client() { zmq_socket_monitor(socket.handle(), nullptr, 0); }

  // Waits for the next monitor event of kind `event`; false on timeout.
  bool waitEvent(int event, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t head, address;
      (void)monitor.recv(head);
      if (head.more()) (void)monitor.recv(address);
      std::uint16_t id = 0;
      std::memcpy(&id, head.data(), sizeof id);
      if (id == event) return true;
    }
    return false;
  }
  void send(wire::Message& m, const std::string* payload = nullptr) {
    const auto bytes = m.bytes();
    socket.send(zmq::buffer(bytes), payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (payload) socket.send(zmq::buffer(*payload), zmq::send_flags::none);
  }
};

// Asks for a plain (rdiff + xz) delta of `target` against `basis`.
void openDelta(Client& c, const std::string& target, const std::string& basis) {
  wire::Message d;
  auto o = d.body().initOpenDelta();
  o.setTargetId(text(target));
  o.setBasisId(text(basis));
  o.initFormats(1).set(0, proto::DeltaFormat::RDIFF_XZ);
  c.send(d);
}

int flood(Client& c, const std::string& artifact, int count, int holdS) {
  if (!c.waitEvent(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 10s)) {
    std::cout << "no handshake" << std::endl;
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    wire::Message m;
    auto r = m.body().initGetChunks();
    r.setArtifactId(artifact);
    auto list = r.initIndices(8);  // the same index, again and again
    for (unsigned j = 0; j < 8; ++j)
      list.set(j, 0);
    c.send(m);
  }
  std::cout << "sent " << count << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(holdS));  // and never read a byte
  return 0;
}

int bigframe(Client& c) {
  if (!c.waitEvent(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 10s)) {
    std::cout << "no handshake" << std::endl;
    return 1;
  }
  std::string big(64 << 20, 'x');
  c.socket.send(zmq::buffer(big), zmq::send_flags::none);
  const bool dropped = c.waitEvent(ZMQ_EVENT_DISCONNECTED, 15s);
  std::cout << (dropped ? "dropped" : "accepted") << std::endl;
  return dropped ? 0 : 1;
}

int signatures(Client& c, const std::string& target, int count) {
  if (!c.waitEvent(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 10s)) {
    std::cout << "no handshake" << std::endl;
    return 1;
  }
  std::mt19937_64 rng(7);
  const std::vector<std::string> hostile = {"../x", "delta-a-b/../../../victim",
                                            std::string("aa\0bb", 5), std::string(4096, 'a'),
                                            std::string(64, 'F')};
  // Not a librsync signature: no delta can be made from it.
  const std::string junk(4096, '\x5a');
  for (int i = 0; i < count; ++i) {
    const std::string basis = i % 5 == 4 ? hostile[(i / 5) % hostile.size()] : randomHex(rng);
    const bool unfinished = i % 3 == 0;
    wire::Message m;
    auto p = m.body().initSignaturePart();
    p.setTargetId(text(target));
    p.setBasisId(text(basis));
    p.setOffset(0);
    p.setTotalSize(unfinished ? 2 * junk.size() : junk.size());
    p.setBlockSize(2048);
    c.send(m, &junk);
    if (unfinished) continue;
    openDelta(c, target, basis);
  }
  // Count what came back for a while: refusals and "pending".
  std::map<std::string, int> seen;
  const auto until = std::chrono::steady_clock::now() + 5s;
  c.socket.set(zmq::sockopt::rcvtimeo, 200);
  while (std::chrono::steady_clock::now() < until) {
    zmq::message_t header;
    if (!c.socket.recv(header)) continue;
    while (header.more()) {
      zmq::message_t extra;
      (void)c.socket.recv(extra);
      header = std::move(extra);
    }
    auto d = wire::decode(header.data(), header.size());
    if (std::holds_alternative<wire::Refused>(d)) {
      ++seen["undecodable"];
      continue;
    }
    auto body = std::get<0>(d)->root().getBody();
    if (body.isUnavailable()) ++seen["unavailable"];
    if (body.isDeltaReply()) ++seen[body.getDeltaReply().isPending() ? "pending" : "other"];
  }
  std::cout << "sent " << count;
  for (const auto& [k, v] : seen)
    std::cout << " " << k << " " << v;
  std::cout << std::endl;
  return 0;
}

// Many connections of one key, each holding the server to as much as it will hold for it.
int connections(const std::string& to, const std::string& serverKey, const net::CurveKeyPair& key,
                const std::string& artifact, int count, int chunks, int manifests, int holdS) {
  zmq::context_t context(1);
  std::vector<zmq::socket_t> sockets;
  for (int i = 0; i < count; ++i) {
    auto& s = sockets.emplace_back(context, zmq::socket_type::dealer);
    net::configureCurveClient(s, key.publicKey, key.secretKey, serverKey);
    s.set(zmq::sockopt::rcvhwm, 1);
    s.set(zmq::sockopt::rcvbuf, 4096);
    s.set(zmq::sockopt::linger, 0);
    s.connect(to);
  }
  std::mt19937_64 rng(11);
  for (auto& s : sockets) {
    wire::Message m;
    auto r = m.body().initGetChunks();
    r.setArtifactId(artifact);
    auto list = r.initIndices(static_cast<unsigned>(chunks));
    for (unsigned j = 0; j < static_cast<unsigned>(chunks); ++j)
      list.set(j, j);
    const auto bytes = m.bytes();
    s.send(zmq::buffer(bytes), zmq::send_flags::none);  // queued until the handshake is done
    for (int j = 0; j < manifests; ++j) {
      wire::Message g;
      g.body().initGetManifest().setArtifactId(randomHex(rng));
      const auto b = g.bytes();
      s.send(zmq::buffer(b), zmq::send_flags::none);
    }
  }
  std::cout << "opened " << count << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(holdS));  // and never read a byte
  return 0;
}

// Receives the next message whose body is of kind `which`, its payload into `payload`.
std::optional<std::string> receive(Client& c, Body::Which which, std::string* payload,
                                   std::chrono::steady_clock::time_point until) {
  while (std::chrono::steady_clock::now() < until) {
    zmq::message_t header;
    if (!c.socket.recv(header)) continue;
    std::string extra;
    if (header.more()) {
      zmq::message_t p;
      (void)c.socket.recv(p);
      extra = p.to_string();
      while (p.more())
        (void)c.socket.recv(p);
    }
    auto d = wire::decode(header.data(), header.size());
    if (std::holds_alternative<wire::Refused>(d)) continue;
    if (std::get<0>(d)->root().getBody().which() != which) continue;
    if (payload) *payload = std::move(extra);
    return header.to_string();
  }
  return std::nullopt;
}

int uploadedDelta(Client& c, const std::string& target, const std::string& basisFile) {
  if (!c.waitEvent(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 10s)) {
    std::cout << "no handshake" << std::endl;
    return 1;
  }
  c.socket.set(zmq::sockopt::rcvtimeo, 200);
  std::random_device seed;
  std::mt19937_64 rng(seed());
  const std::string basis = randomHex(rng);  // a basis the server has never seen
  const auto until = std::chrono::steady_clock::now() + 90s;
  auto open = [&] { openDelta(c, target, basis); };
  auto decode = [](const std::string& h) { return wire::decode(h.data(), h.size()); };
  open();
  auto first = receive(c, Body::DELTA_REPLY, nullptr, until);
  if (!first) return std::cout << "no delta reply" << std::endl, 1;
  auto r1 = std::get<0>(decode(*first))->root().getBody().getDeltaReply();
  if (!r1.isNeedSignature()) return std::cout << "no signature asked for" << std::endl, 1;
  const fs::path sig = fs::temp_directory_path() / ("hostile-" + basis + ".sig");
  makeSignature(basisFile, sig, r1.getNeedSignature());
  std::ifstream in(sig, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  fs::remove(sig);
  for (std::uint64_t off = 0; off < bytes.size(); off += kSignaturePart) {
    const std::string part = bytes.substr(off, kSignaturePart);
    wire::Message m;
    auto p = m.body().initSignaturePart();
    p.setTargetId(text(target));
    p.setBasisId(text(basis));
    p.setOffset(off);
    p.setTotalSize(bytes.size());
    p.setBlockSize(r1.getNeedSignature());
    c.send(m, &part);
  }
  // Asked again until it is ready.
  std::string deltaId, encoded;
  while (deltaId.empty() && std::chrono::steady_clock::now() < until) {
    open();
    auto h = receive(c, Body::DELTA_REPLY, nullptr, until);
    if (!h) continue;
    auto r = std::get<0>(decode(*h))->root().getBody().getDeltaReply();
    if (r.isReady()) {
      deltaId = wire::toString(r.getReady().getArtifactId());
      encoded = wire::toString(r.getReady().getEncoded());
    } else if (r.isUnavailable()) {
      std::cout << "unavailable " << wire::toString(r.getUnavailable()) << std::endl;
      return 1;
    } else {
      std::this_thread::sleep_for(250ms);
    }
  }
  std::string why;
  auto manifest = decodeManifest(encoded, &why);
  if (deltaId.empty() || !manifest) return std::cout << "no delta " << why << std::endl, 1;
  wire::Message g;
  auto req = g.body().initGetChunks();
  req.setArtifactId(text(deltaId));
  auto list = req.initIndices(manifest->chunkCount());
  for (std::uint32_t i = 0; i < manifest->chunkCount(); ++i)
    list.set(i, i);
  c.send(g);
  std::set<std::uint32_t> received;
  std::uint64_t total = 0;
  while (received.size() < manifest->chunkCount() && std::chrono::steady_clock::now() < until) {
    std::string payload;
    auto h = receive(c, Body::CHUNK, &payload, until);
    if (!h) break;
    auto chunk = std::get<0>(decode(*h))->root().getBody().getChunk();
    if (wire::toString(chunk.getArtifactId()) != deltaId) continue;
    if (chunk.getIndex() >= manifest->chunkCount() ||
        sha256(payload) != manifest->chunkHash(chunk.getIndex()))
      continue;
    if (received.insert(chunk.getIndex()).second) total += payload.size();
  }
  std::cout << "delta " << deltaId << " chunks " << manifest->chunkCount() << " received "
            << received.size() << " bytes " << total << std::endl;
  return received.size() == manifest->chunkCount() ? 0 : 1;
}

// --- a hostile upstream -----------------------------------------------------------------------

struct Upstream {
  std::string mode;
  std::string value;
  Manifest manifest;
  std::string encoded;  // what is offered as the manifest
  std::string data;     // the file
  std::string id;
};

void sendTo(zmq::socket_t& s, const zmq::message_t& routing, wire::Message& m,
            const std::string* payload = nullptr) {
  s.send(zmq::buffer(routing.data(), routing.size()), zmq::send_flags::sndmore);
  const auto bytes = m.bytes();
  s.send(zmq::buffer(bytes), payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
  if (payload) s.send(zmq::buffer(*payload), zmq::send_flags::none);
}

int upstream(const std::string& listen, const net::CurveKeyPair& key, Upstream u) {
  zmq::context_t context(1);
  zmq::socket_t s(context, zmq::socket_type::router);
  net::configureCurveServer(s, key.secretKey);  // no ZAP handler: any client key is admitted
  s.set(zmq::sockopt::linger, 0);
  zmq::socket_t monitor(context, zmq::socket_type::pair);
  zmq_socket_monitor(s.handle(), "inproc://upstream-monitor", ZMQ_EVENT_DISCONNECTED);
  monitor.connect("inproc://upstream-monitor");
  s.bind(listen);
  std::cout << "artifact " << u.id << "\ndigest " << manifestDigest(u.encoded) << "\nlistening "
            << listen << std::endl;
  bool sentBig = false;
  for (;;) {
    zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, 1000ms);
    if (items[1].revents & ZMQ_POLLIN) {
      zmq::message_t head, address;
      (void)monitor.recv(head);
      if (head.more()) (void)monitor.recv(address);
      if (sentBig) std::cout << "dropped after the big frame" << std::endl;
    }
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    zmq::message_t routing, header;
    (void)s.recv(routing);
    (void)s.recv(header);
    while (header.more()) {
      zmq::message_t extra;
      (void)s.recv(extra);
      if (!extra.more()) break;
    }
    auto d = wire::decode(header.data(), header.size());
    if (std::holds_alternative<wire::Refused>(d)) continue;
    auto body = std::get<0>(d)->root().getBody();
    if (u.mode == "bigframe") {
      std::string big(64 << 20, 'x');
      s.send(zmq::buffer(routing.data(), routing.size()), zmq::send_flags::sndmore);
      s.send(zmq::buffer(big), zmq::send_flags::none);
      sentBig = true;
      continue;
    }
    const bool hostileHere = !u.value.empty();
    switch (body.which()) {
      case Body::PING: {
        wire::Message m;
        m.body().setPong(body.getPing());
        sendTo(s, routing, m);
        break;
      }
      case Body::GET_MANIFEST: {
        wire::Message m;
        auto r = m.body().initManifest();
        r.setArtifactId(text(u.mode == "manifest-id" && hostileHere ? u.value : u.id));
        r.setEncoded(wire::asData(u.encoded));
        r.setChunksAvailable(u.manifest.chunkCount());
        sendTo(s, routing, m);
        break;
      }
      case Body::GET_CHUNKS: {
        for (auto index : body.getGetChunks().getIndices()) {
          if (index >= u.manifest.chunkCount()) continue;
          const std::string chunk =
              u.data.substr(u.manifest.chunkOffset(index), u.manifest.chunkLength(index));
          wire::Message m;
          auto h = m.body().initChunk();
          h.setArtifactId(text(u.mode == "chunk-id" ? u.value : u.id));
          h.setIndex(index);
          h.setSize(static_cast<std::uint32_t>(chunk.size()));
          sendTo(s, routing, m, &chunk);
        }
        break;
      }
      case Body::OPEN_DELTA: {
        auto req = body.getOpenDelta();
        wire::Message m;
        auto r = m.body().initDeltaReply();
        r.setTargetId(req.getTargetId());
        r.setBasisId(req.getBasisId());
        const std::string basis = wire::toString(req.getBasisId());
        if (u.mode == "delta-id" || u.mode == "delta-basis") {
          // A delta manifest naming the value as its basis (delta-basis), offered under the
          // value as its id (delta-id).
          Manifest dm = u.manifest;
          dm.kind = ArtifactKind::delta;
          dm.basisId = u.mode == "delta-basis" ? u.value : basis;
          dm.targetId = u.id;
          auto ready = r.initReady();
          ready.setArtifactId(text(u.mode == "delta-id" ? u.value : ids::deltaId(basis, u.id)));
          ready.setEncoded(wire::asData(encodeManifest(dm)));
          ready.setChunksAvailable(dm.chunkCount());
        } else {
          r.setUnavailable("no deltas here");
        }
        sendTo(s, routing, m);
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"a misbehaving transfer peer, for tests"};
  app.require_subcommand(1);
  std::string to, serverKey, keyFile, artifact, target, listen, file, name, version, mode, valueHex;
  int count = 1, hold = 0, chunks = 1, manifests = 0;
  auto client = [&](CLI::App* c) {
    c->add_option("--to", to)->required();
    c->add_option("--server-key", serverKey)->required();
    c->add_option("--key", keyFile)->required();
  };
  auto* floodCmd = app.add_subcommand("flood");
  client(floodCmd);
  floodCmd->add_option("--artifact", artifact)->required();
  floodCmd->add_option("--count", count);
  floodCmd->add_option("--hold", hold);
  auto* bigCmd = app.add_subcommand("bigframe");
  client(bigCmd);
  auto* sigCmd = app.add_subcommand("signatures");
  client(sigCmd);
  sigCmd->add_option("--target", target)->required();
  sigCmd->add_option("--count", count);
  auto* connCmd = app.add_subcommand("connections");
  client(connCmd);
  connCmd->add_option("--artifact", artifact)->required();
  connCmd->add_option("--connections", count);
  connCmd->add_option("--chunks", chunks);
  connCmd->add_option("--manifests", manifests);
  connCmd->add_option("--hold", hold);
  auto* deltaCmd = app.add_subcommand("uploaded-delta");
  client(deltaCmd);
  deltaCmd->add_option("--target", target)->required();
  deltaCmd->add_option("--basis-file", file)->required();
  auto* upCmd = app.add_subcommand("upstream");
  upCmd->add_option("--listen", listen)->required();
  upCmd->add_option("--key", keyFile)->required();
  upCmd->add_option("--file", file)->required();
  upCmd->add_option("--name", name)->required();
  upCmd->add_option("--version", version)->required();
  upCmd->add_option("--mode", mode)->required();
  upCmd->add_option("--value-hex", valueHex);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto key = net::loadSecretKey(keyFile);
    if (*upCmd) {
      Upstream u;
      u.mode = mode;
      u.value = fromHex(valueHex);
      ManifestOptions mo;
      mo.imageName = name;
      mo.imageVersion = version;
      mo.chunkSize = 1 << 20;
      u.manifest = buildManifest(file, mo);
      u.id = u.manifest.id();
      Manifest offered = u.manifest;
      if (mode == "manifest-name") offered.imageName = u.value;
      u.encoded = encodeManifest(offered);
      std::ifstream in(file, std::ios::binary);
      u.data.assign(std::istreambuf_iterator<char>(in), {});
      return upstream(listen, key, std::move(u));
    }
    if (*connCmd)
      return connections(to, net::loadPublicKey(serverKey), key, artifact, count, chunks, manifests,
                         hold);
    Client c(to, net::loadPublicKey(serverKey), key, static_cast<bool>(*deltaCmd));
    if (*deltaCmd) return uploadedDelta(c, target, file);
    if (*floodCmd) return flood(c, artifact, count, hold);
    if (*bigCmd) return bigframe(c);
    if (*sigCmd) return signatures(c, target, count);
  } catch (const std::exception& e) {
    std::cerr << "hostile_peer: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
