// entraclaw._cng_standin: the stand-in's control API for Python tests and
// benchmarks. Test-only; built only with ENTRACLAW_STANDIN=ON.
#include <pybind11/pybind11.h>

#include <chrono>
#include <iterator>
#include <string>
#include <vector>

#include "entraclaw_standin/control.h"
#include "entraclaw_standin/windows_standin.h"

namespace py = pybind11;

namespace {

int location_id(const std::string& location) {
  if (location == "CurrentUser") return STANDIN_CURRENT_USER;
  if (location == "LocalMachine") return STANDIN_LOCAL_MACHINE;
  throw py::value_error("location must be 'CurrentUser' or 'LocalMachine'");
}

// A Python str or None as the control API's optional `const char*` (NULL = "all" / "unchanged").
class OptionalText {
 public:
  explicit OptionalText(const py::object& value)
      : present_(!value.is_none()), text_(present_ ? value.cast<std::string>() : std::string()) {}
  const char* get() const { return present_ ? text_.c_str() : nullptr; }

 private:
  bool present_;
  std::string text_;
};

std::string bytes_of(const py::object& data) {
  if (data.is_none()) return std::string();
  return data.cast<std::string>();
}

// Benchmark floor: nanoseconds per warm NCryptSignHash called straight from
// C++ (no Python, no core), optionally preceded by a size query each time.
double native_sign_ns(const std::string& thumbprint_hex, int iterations, bool size_query) {
  std::vector<BYTE> hash_bytes(20);
  for (size_t i = 0; i < 20; ++i) hash_bytes[i] = static_cast<BYTE>(std::stoi(thumbprint_hex.substr(2 * i, 2), nullptr, 16));
  HCERTSTORE store = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_CURRENT_USER | CERT_STORE_READONLY_FLAG, L"My");
  CRYPT_HASH_BLOB hash{20, hash_bytes.data()};
  PCCERT_CONTEXT cert = CertFindCertificateInStore(store, X509_ASN_ENCODING, 0, CERT_FIND_HASH, &hash, nullptr);
  HCRYPTPROV_OR_NCRYPT_KEY_HANDLE key = 0;
  DWORD spec = 0;
  BOOL caller_frees = FALSE;
  if (cert == nullptr ||
      !CryptAcquireCertificatePrivateKey(cert, CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG, nullptr, &key, &spec, &caller_frees)) {
    if (cert != nullptr) CertFreeCertificateContext(cert);
    CertCloseStore(store, 0);
    throw py::value_error("certificate or key not found in the stand-in");
  }
  BCRYPT_PKCS1_PADDING_INFO info{BCRYPT_SHA256_ALGORITHM};
  BYTE digest[32] = {1};
  std::vector<BYTE> sig(512);
  DWORD size = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    if (size_query) NCryptSignHash(key, &info, digest, 32, nullptr, 0, &size, NCRYPT_PAD_PKCS1_FLAG);
    NCryptSignHash(key, &info, digest, 32, sig.data(), 512, &size, NCRYPT_PAD_PKCS1_FLAG);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (caller_frees) NCryptFreeObject(key);
  CertFreeCertificateContext(cert);
  CertCloseStore(store, 0);
  return std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
}

}  // namespace

PYBIND11_MODULE(_cng_standin, m) {
  m.doc() = "Control API of the test-only software stand-in for ncrypt/crypt32.";
  m.attr("SOFTWARE_PROVIDER") = "Microsoft Software Key Storage Provider";
  m.attr("PLATFORM_PROVIDER") = "Microsoft Platform Crypto Provider";

  m.def("reset", &standin_reset);
  m.def(
      "add_certificate",
      [](const std::string& location, const py::bytes& cert_der, const py::object& key_der,
         const std::string& provider, const std::string& container, bool exportable) {
        const std::string cert = cert_der;
        const std::string key = bytes_of(key_der);
        const int32_t st = standin_add_certificate(
            location_id(location), reinterpret_cast<const uint8_t*>(cert.data()), cert.size(),
            key.empty() ? nullptr : reinterpret_cast<const uint8_t*>(key.data()), key.size(), provider.c_str(),
            container.c_str(), exportable ? 1 : 0);
        if (st != 0) throw py::value_error("standin_add_certificate failed: " + std::to_string(static_cast<uint32_t>(st)));
      },
      py::arg("location"), py::arg("cert_der"), py::arg("key_der") = py::none(),
      py::arg("provider") = "Microsoft Software Key Storage Provider", py::arg("container") = "",
      py::arg("exportable") = false);
  m.def("remove_key", [](const std::string& provider, const std::string& container) {
    return standin_remove_key(provider.c_str(), container.c_str()) != 0;
  });
  m.def("evict_key", [](const std::string& provider, const std::string& container) {
    return standin_evict_key(provider.c_str(), container.c_str()) != 0;
  });
  m.def("key_exists", [](const std::string& provider, const std::string& container) {
    return standin_key_exists(provider.c_str(), container.c_str()) != 0;
  });
  m.def("certificate_count", [](const std::string& location) { return standin_certificate_count(location_id(location)); });
  m.def(
      "fail",
      [](const std::string& function, std::uint32_t status, int times, int skip) {
        if (standin_fail(function.c_str(), static_cast<int32_t>(status), times, skip) != 0) {
          throw py::value_error("unknown function or bad count: " + function);
        }
      },
      py::arg("function"), py::arg("status"), py::arg("times") = 1, py::arg("skip") = 0);
  m.def("clear_faults", &standin_clear_faults);
  m.def("set_provider_status", [](const std::string& provider, std::uint32_t status) {
    standin_set_provider_status(provider.c_str(), static_cast<int32_t>(status));
  });
  m.def("set_sign_latency_us", &standin_set_sign_latency_us);
  m.def("set_null_signature", [](bool enabled) { standin_set_null_signature(enabled ? 1 : 0); });
  m.def("set_caller_frees_key", [](bool caller_frees) { standin_set_caller_frees_key(caller_frees ? 1 : 0); });
  m.def("call_count", [](const std::string& function) { return standin_call_count(function.c_str()); });
  m.def("total_calls", &standin_total_calls);
  m.def("reset_counters", &standin_reset_counters);
  m.def(
      "open_handles",
      [](const py::object& kind) { return standin_open_handles(OptionalText(kind).get()); },
      py::arg("kind") = py::none());
  m.def("invalid_frees", &standin_invalid_frees);
  m.def(
      "set_key_option",
      [](const std::string& provider, const std::string& container, const std::string& option, std::int64_t value) {
        if (standin_set_key_option(provider.c_str(), container.c_str(), option.c_str(), value) != 0) {
          throw py::value_error("unknown key or option: " + option);
        }
      },
      py::arg("provider"), py::arg("container"), py::arg("option"), py::arg("value"));
  m.def(
      "set_link",
      [](const std::string& location, const py::bytes& sha1, std::uint32_t prov_type, std::uint32_t key_spec,
         const py::object& provider) {
        const std::string hash = sha1;
        if (hash.size() != 20) throw py::value_error("sha1 must be 20 bytes");
        const OptionalText name(provider);
        if (standin_set_link(location_id(location), reinterpret_cast<const uint8_t*>(hash.data()), prov_type, key_spec,
                             name.get()) != 0) {
          throw py::value_error("no certificate with a key link has that SHA-1");
        }
      },
      py::arg("location"), py::arg("sha1"), py::arg("prov_type"), py::arg("key_spec"), py::arg("provider") = py::none());
  m.def(
      "calls_without_silent",
      [](const py::object& function) { return standin_calls_without_silent(OptionalText(function).get()); },
      py::arg("function") = py::none());
  m.def("ui_prompts", &standin_ui_prompts);
  m.def("max_sign_overlap", [](bool hardware) { return standin_max_sign_overlap(hardware ? 1 : 0); });
  m.def("set_tpm_max_bits", &standin_set_tpm_max_bits);
  m.def("set_provider_pss_salt", &standin_set_provider_pss_salt, py::arg("value"));
  m.def("create_aik", [](const std::string& container) {
    if (standin_create_aik(container.c_str()) != 0) throw py::value_error("AIK creation failed");
  });
  m.def("key_public_der", [](const std::string& provider, const std::string& container) {
    const std::int64_t len = standin_key_public_der(provider.c_str(), container.c_str(), nullptr, 0);
    if (len < 0) throw py::value_error("no such key");
    std::string out(static_cast<std::size_t>(len), '\0');
    standin_key_public_der(provider.c_str(), container.c_str(), reinterpret_cast<uint8_t*>(out.data()), out.size());
    return py::bytes(out);
  });
  m.def("key_tpm_public", [](const std::string& provider, const std::string& container) {
    const std::int64_t len = standin_key_tpm_public(provider.c_str(), container.c_str(), nullptr, 0);
    if (len < 0) throw py::value_error("no such hardware key");
    std::string out(static_cast<std::size_t>(len), '\0');
    standin_key_tpm_public(provider.c_str(), container.c_str(), reinterpret_cast<uint8_t*>(out.data()), out.size());
    return py::bytes(out);
  });
  m.def("set_ek_certificate", [](const py::bytes& der) {
    const std::string data = der;
    standin_set_ek_certificate(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  });
  m.def("set_claim_tamper", &standin_set_claim_tamper);
  m.def("set_pcp_setproperty_flags", [](bool accepted) { standin_set_pcp_setproperty_flags(accepted ? 1 : 0); });
  m.def(
      "set_store_missing",
      [](const std::string& location, bool missing) { standin_set_store_missing(location_id(location), missing ? 1 : 0); },
      py::arg("location"), py::arg("missing") = true);
  m.def("add_linked_certificate", [](const std::string& location, const py::bytes& existing, const std::string& cn) {
    const std::string der = existing;
    const int32_t st = standin_add_linked_certificate(location_id(location), reinterpret_cast<const uint8_t*>(der.data()),
                                                      der.size(), cn.c_str());
    if (st != 0) throw py::value_error("no linked certificate with that DER in the store");
  });
  m.def("store_exists", [](const std::string& location) { return standin_store_exists(location_id(location)) != 0; });
  // How many exception translators are registered process-wide (every
  // pybind11 module of this ABI shares them). A module that registers its own
  // with register_exception_translator adds one here for everyone.
  m.def("global_exception_translators", [] {
    auto& list = py::detail::get_internals().registered_exception_translators;
    return static_cast<int>(std::distance(list.begin(), list.end()));
  });
  m.def("library_path", [] { return std::string(standin_library_path()); });
  // advapi32 part (native/standin/src/advapi.cpp).
  m.def(
      "set_current_sid",
      [](const py::object& sid, const py::object& name, const py::object& domain) {
        const OptionalText s(sid);
        if (standin_set_current_sid(s.get(), OptionalText(name).get(), OptionalText(domain).get()) != 0) {
          throw py::value_error("not a SID in S-1-... form: " + std::string(s.get() != nullptr ? s.get() : ""));
        }
      },
      py::arg("sid") = py::none(), py::arg("name") = py::none(), py::arg("domain") = py::none());
  m.def(
      "add_account",
      [](const std::string& sid, const std::string& name, const std::string& domain) {
        if (standin_add_account(sid.c_str(), name.c_str(), domain.c_str()) != 0) {
          throw py::value_error("not a SID in S-1-... form: " + sid);
        }
      },
      py::arg("sid"), py::arg("name"), py::arg("domain") = "");
  m.def("default_user_sid", [] { return std::string(standin_default_user_sid()); });
  m.def("file_security_count", &standin_file_security_count);
  m.def("native_sign_ns", &native_sign_ns, py::arg("thumbprint"), py::arg("iterations"), py::arg("size_query"),
        py::call_guard<py::gil_scoped_release>());
}
