// imgpipe-transfer: the transfer plane without a coordinator, for tests, benchmarks and
// operators. The same library code as the agents.
//
//   imgpipe-transfer keygen NAME --dir DIR
//   imgpipe-transfer import FILE --store DIR --name N --version V [--metadata JSONFILE]
//   imgpipe-transfer serve  --store DIR --listen EP --key KEYFILE --allow PUB...
//   imgpipe-transfer fetch  --store DIR --from EP --server-key PUB --key KEYFILE
//                           --artifact ID --manifest-digest D [--rate R] [--no-delta]
//   imgpipe-transfer relay  (serve and fetch options together: fetch from upstream while
//                           serving downstream; keeps serving until SIGTERM)
//   imgpipe-transfer path   --store DIR --artifact ID
//   imgpipe-transfer ls     --store DIR
//
// Exit codes: 0 ok, 1 failed, 2 usage, 4 not enough disk space.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/net/curve_keys.h"
#include "common/net/shutdown_signals.h"
#include "common/units.h"
#include "definition/outputs.h"
#include "transfer/fetch_runner.h"
#include "transfer/transfer_config.h"

using namespace imgpipe;

namespace {

struct Options {
  std::string store;
  std::string config;  // optional YAML with a transfer: section (all agent options)
  std::string logLevel = "info";
  std::string listen;
  std::string keyFile;
  std::vector<std::string> allow;
  std::string from, serverKey, artifact, digest, rate;
  bool noDelta = false;
  bool progress = false;
  std::string reserve;
};

transfer::TransferConfig makeConfig(const Options& o, bool serving) {
  transfer::TransferConfig c;
  if (!o.config.empty()) {
    auto doc = YamlReader::fromFile(o.config);
    c = transfer::parseTransferConfig(doc.at("transfer"), o.store, serving);
    doc.rejectUnknownKeys();
  }
  c.storeDir = o.store;
  c.listen = serving ? o.listen : "";
  c.advertise = c.listen;
  if (!o.reserve.empty())
    c.reserve = parseSize(o.reserve);
  else if (o.config.empty())
    c.reserve = 0;
  if (!o.rate.empty()) c.rateLimit = parseRate(o.rate);
  return c;
}

int runServeAndMaybeFetch(const Options& o, bool fetchToo) {
  net::ShutdownSignals signals;
  auto keys = net::loadSecretKey(o.keyFile);
  zmq::context_t zmq(1);
  net::Reactor reactor;
  transfer::TransferPlane plane(makeConfig(o, true), zmq, reactor, keys, true);
  for (const auto& a : o.allow)
    plane.server()->allowAll(net::loadPublicKey(a), a);
  std::cout << "listening " << plane.server()->endpoint() << std::endl;
  reactor.addFd(signals.fd(), [&] {
    signals.drain();
    reactor.stop();
  });
  int rc = 0;
  std::jthread fetcher;
  if (fetchToo) {
    transfer::FetchRequest req;
    req.artifactId = o.artifact;
    req.manifestDigest = o.digest;
    req.upstream = {o.from, net::loadPublicKey(o.serverKey)};
    req.allowDelta = !o.noDelta;
    fetcher = std::jthread([&, req](std::stop_token stop) {
      try {
        auto out = plane.fetch(req, stop);
        std::cout << "fetched " << out.artifact->id() << " seconds " << out.seconds
                  << " reconnects " << out.reconnects << (out.viaDelta ? " via delta" : "")
                  << std::endl;
      } catch (const std::exception& e) {
        if (!stop.stop_requested()) {
          std::cerr << "imgpipe-transfer relay: " << e.what() << "\n";
          rc = 1;
          reactor.stop();
        }
      }
    });
  }
  reactor.run();
  fetcher.request_stop();
  return rc;
}

int runFetch(const Options& o) {
  net::ShutdownSignals signals;
  auto keys = net::loadSecretKey(o.keyFile);
  zmq::context_t zmq(1);
  net::Reactor reactor;  // unused: a fetch lives on this thread
  transfer::TransferPlane plane(makeConfig(o, false), zmq, reactor, keys, false);
  transfer::FetchRequest req;
  req.artifactId = o.artifact;
  req.manifestDigest = o.digest;
  req.upstream = {o.from, net::loadPublicKey(o.serverKey)};
  req.allowDelta = !o.noDelta;
  std::stop_source stop;
  // Turns SIGTERM/SIGINT into a stop request; woken through an eventfd when the fetch ends, so
  // exiting never waits on a poll timeout.
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC));
  if (!wake) throwErrno("eventfd");
  std::jthread watcher([&](std::stop_token st) {
    std::stop_callback onStop(st, [&] {
      std::uint64_t one = 1;
      (void)!::write(wake.get(), &one, sizeof one);
    });
    pollfd p[2] = {{signals.fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    while (!st.stop_requested()) {
      if (::poll(p, 2, -1) > 0 && (p[0].revents & POLLIN)) {
        signals.drain();
        stop.request_stop();
        return;
      }
    }
  });
  auto out = plane.fetch(req, stop.get_token(), [&](const transfer::FetchProgress& p) {
    if (!o.progress) return;
    std::fprintf(stderr, "%s %llu/%llu %s/s eta %us attempt %u %s\n", p.phase.c_str(),
                 static_cast<unsigned long long>(p.done), static_cast<unsigned long long>(p.total),
                 formatBytes(p.rateBps).c_str(), p.etaS, p.attempt, p.state.c_str());
  });
  std::cout << "fetched " << out.artifact->id() << "\n"
            << "path " << out.artifact->dataPath().string() << "\n"
            << "seconds " << out.seconds << "\n"
            << "reconnects " << out.reconnects << "\n"
            << "congestion " << (out.congestion.empty() ? "-" : out.congestion) << "\n"
            << "rtt_ms " << out.rttMs << "\n"
            << "dead_after_ms " << out.deadAfterMs << "\n"
            << "via "
            << (out.alreadyHere ? "already-here"
                : out.viaDelta  ? "delta"
                                : "full")
            << "\n"
            << "delta_bytes " << out.deltaBytes << "\n"
            << "bad_chunks " << out.badChunks << "\n"
            << "chunk_bytes " << out.chunkBytesReceived << "\n";
  if (!out.deltaNote.empty()) std::cout << "note " << out.deltaNote << "\n";
  return 0;
}

transfer::ArtifactStore openStore(const Options& o) {
  transfer::StoreOptions so;
  so.dir = o.store;
  return transfer::ArtifactStore(so);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"imgpipe transfer plane tool"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--log-level", o.logLevel, "trace, debug, info, warn, error")
      ->capture_default_str();

  std::string keyName, keyDir;
  auto* keygen = app.add_subcommand("keygen", "write a CURVE key pair NAME.key / NAME.pub");
  keygen->add_option("name", keyName)->required();
  keygen->add_option("--dir", keyDir)->required();

  std::string file, name, version, metadataFile, chunkSize, output = "qcow2";
  auto* import = app.add_subcommand("import", "add a finished image to a store");
  import->add_option("file", file)->required();
  import->add_option("--store", o.store)->required();
  import->add_option("--name", name)->required();
  import->add_option("--version", version)->required();
  import->add_option("--metadata", metadataFile, "JSON file travelling with the image");
  import->add_option("--chunk-size", chunkSize, "default 1M");
  import->add_option("--output", output, "the output kind the file is: qcow2 (default), iso");

  auto addCommon = [&](CLI::App* c) {
    c->add_option("--store", o.store)->required();
    c->add_option("--key", o.keyFile, "this side's secret key file")->required();
    c->add_option("--config", o.config, "YAML file with a transfer: section");
  };
  auto addServe = [&](CLI::App* c) {
    c->add_option("--listen", o.listen, "e.g. tcp://198.18.0.1:7701")->required();
    c->add_option("--allow", o.allow, "public key (file or Z85) allowed to fetch anything");
  };
  auto addFetch = [&](CLI::App* c) {
    c->add_option("--from", o.from, "upstream artifact server endpoint")->required();
    c->add_option("--server-key", o.serverKey, "upstream public key (file or Z85)")->required();
    c->add_option("--artifact", o.artifact)->required();
    c->add_option("--manifest-digest", o.digest)->required();
    c->add_option("--rate", o.rate, "bandwidth cap, e.g. 30mbit");
    c->add_flag("--no-delta", o.noDelta, "never ask for a delta");
    c->add_option("--reserve", o.reserve, "free space to leave on the store's disk");
  };
  auto* serve = app.add_subcommand("serve", "serve a store's artifacts");
  addCommon(serve);
  addServe(serve);
  auto* fetch = app.add_subcommand("fetch", "fetch one artifact into a store");
  addCommon(fetch);
  addFetch(fetch);
  fetch->add_flag("--progress", o.progress, "progress lines on stderr");
  auto* relayCmd = app.add_subcommand("relay", "fetch from upstream while serving downstream");
  addCommon(relayCmd);
  addServe(relayCmd);
  addFetch(relayCmd);
  auto* pathCmd = app.add_subcommand("path", "print the data file of a complete artifact");
  pathCmd->add_option("--store", o.store)->required();
  pathCmd->add_option("--artifact", o.artifact)->required();
  auto* ls = app.add_subcommand("ls", "list the complete images in a store");
  ls->add_option("--store", o.store)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    log::init("transfer", o.logLevel);
    if (*keygen) {
      net::writeKeyPair(net::generateKeyPair(keyName), keyDir);
      return 0;
    }
    if (*import) {
      transfer::StoreOptions so;
      so.dir = o.store;
      if (!chunkSize.empty()) so.chunkSize = static_cast<std::uint32_t>(parseSize(chunkSize));
      transfer::ArtifactStore store(so);
      const auto kind = definition::parseOutputKind(output);
      if (!kind || definition::carrierOf(*kind) != *kind)
        throw Error("--output '" + output + "' is not a file imgpipe carries (qcow2, iso)");
      auto info = store.importFile(file, name, version,
                                   metadataFile.empty() ? "" : readFile(metadataFile), *kind);
      std::cout << "artifact " << info.id << "\nmanifest " << info.manifestDigest << "\nsize "
                << info.size << "\nsha512 " << info.sha512 << "\n";
      return 0;
    }
    if (*serve) return runServeAndMaybeFetch(o, false);
    if (*relayCmd) return runServeAndMaybeFetch(o, true);
    if (*fetch) return runFetch(o);
    if (*pathCmd) {
      auto store = openStore(o);
      auto p = store.pathOf(o.artifact);
      if (!p) {
        std::cerr << "imgpipe-transfer: no complete artifact " << o.artifact << " in " << o.store
                  << "\n";
        return 1;
      }
      std::cout << p->string() << "\n";
      return 0;
    }
    if (*ls) {
      auto store = openStore(o);
      for (const auto& a : store.inventory())
        std::cout << a.id << " " << a.imageName << " " << a.imageVersion << " " << a.size << " "
                  << a.manifestDigest << "\n";
      return 0;
    }
  } catch (const transfer::InsufficientSpace& e) {
    std::cerr << "imgpipe-transfer: " << e.what() << "\n";
    return 4;
  } catch (const std::exception& e) {
    std::cerr << "imgpipe-transfer: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
