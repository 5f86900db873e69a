// entraclaw._cng: the pybind11 face of the core. Thin on purpose: argument
// conversion, GIL release around every Win32 call, and status -> Python
// exception translation. The meaning of statuses lives in status_table.h and
// src/entraclaw/cng.py.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cert_key.h"
#include "data_protection.h"
#include "file_security.h"
#include "provision.h"
#include "status.h"

namespace py = pybind11;
namespace cng = entraclaw::cng;

namespace {

struct StatusError {
  cng::Status status;
  int attempts;
  int reacquires;
  cng::Status orphan;  // provisioning: the key left behind after a failed rollback
};
struct ClosedError {};

PyObject* g_status_error = nullptr;
PyObject* g_closed_error = nullptr;

[[noreturn]] void raise_status(const cng::Status& st, int attempts = 1, int reacquires = 0) {
  if (st.api == cng::kClosedApi) throw ClosedError{};
  throw StatusError{st, attempts, reacquires, cng::ok_status()};
}

cng::StoreLocation parse_location(const std::string& location) {
  if (location == "CurrentUser") return cng::StoreLocation::CurrentUser;
  if (location == "LocalMachine") return cng::StoreLocation::LocalMachine;
  throw py::value_error("store location must be 'CurrentUser' or 'LocalMachine', not '" + location + "'");
}

cng::Sha1 parse_thumbprint(const std::string& thumbprint) {
  cng::Sha1 out{};
  if (!cng::parse_sha1_hex(thumbprint, out)) {
    throw py::value_error("a SHA-1 certificate thumbprint is 40 hex digits");
  }
  return out;
}

cng::RetryPolicy make_policy(int attempts, double initial_delay_ms, double multiplier, double max_delay_ms) {
  cng::RetryPolicy policy{attempts, initial_delay_ms, multiplier, max_delay_ms};
  if (!policy.valid()) {
    throw py::value_error("retry policy needs attempts >= 1, delays >= 0 and multiplier >= 1");
  }
  return policy;
}

std::pair<const std::uint8_t*, std::size_t> view(const py::bytes& data) {
  char* buffer = nullptr;
  Py_ssize_t length = 0;
  if (PyBytes_AsStringAndSize(data.ptr(), &buffer, &length) != 0) throw py::error_already_set();
  return {reinterpret_cast<const std::uint8_t*>(buffer), static_cast<std::size_t>(length)};
}

py::bytes to_bytes(const std::vector<std::uint8_t>& data) {
  return py::bytes(reinterpret_cast<const char*>(data.data()), data.size());
}

py::dict certificate_dict(const cng::CertificateInfo& info) {
  py::dict d;
  d["der"] = to_bytes(info.der);
  d["not_before"] = info.not_before;
  d["not_after"] = info.not_after;
  d["subject"] = info.subject;
  return d;
}

py::dict account_dict(const cng::AccountInfo& info) {
  py::dict d;
  d["sid"] = info.sid;
  d["name"] = info.name;
  d["domain"] = info.domain;
  d["kind"] = std::string(cng::account_kind_name(info.kind));
  d["lookup_hresult"] = info.lookup.code();
  d["lookup_api"] = std::string(info.lookup.api);
  return d;
}

py::dict dacl_dict(const cng::DaclInfo& info) {
  py::list aces;
  for (const auto& ace : info.aces) {
    aces.append(py::make_tuple(ace.sid, ace.mask, static_cast<int>(ace.type), static_cast<int>(ace.flags)));
  }
  py::dict d;
  d["owner"] = info.owner_sid;
  d["control"] = info.control;
  d["dacl_present"] = info.dacl_present;
  d["protected"] = info.is_protected;
  d["aces"] = aces;
  return d;
}

std::vector<std::uint8_t> account_sid(const std::string& name, cng::AccountInfo& info) {
  std::vector<std::uint8_t> sid;
  cng::Status st;
  {
    py::gil_scoped_release release;
    st = cng::lookup_account(name, sid, info);
  }
  if (!st.ok()) raise_status(st);
  return sid;
}

std::unique_ptr<cng::CertKey> open_key(const std::string& thumbprint, const std::string& location, int attempts,
                                       double initial_delay_ms, double multiplier, double max_delay_ms) {
  const cng::Sha1 hash = parse_thumbprint(thumbprint);
  const cng::StoreLocation where = parse_location(location);
  const cng::RetryPolicy policy = make_policy(attempts, initial_delay_ms, multiplier, max_delay_ms);
  auto key = std::make_unique<cng::CertKey>();
  cng::Status st;
  int tries = 0;
  {
    py::gil_scoped_release release;
    st = key->open(hash, where, policy, &tries);
  }
  if (!st.ok()) raise_status(st, tries);
  return key;
}

// Owner-only DACLs and the process account (file_security.h), for
// entraclaw.platform.winacl. Failures raise CngStatusError like the rest.
void bind_file_security(py::module_& m) {
  m.def(
      "set_owner_only_dacl",
      [](const std::string& path, bool directory) {
        cng::OwnerOnlyResult result;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::set_owner_only_dacl(path, directory, result);
        }
        if (!st.ok()) raise_status(st);
        py::dict d;
        d["sid"] = result.sid;
        d["owner_set"] = result.owner_set;
        d["owner_hresult"] = result.owner_status.code();
        d["owner_api"] = std::string(result.owner_status.api);
        return d;
      },
      py::arg("path"), py::arg("directory") = false);

  m.def(
      "read_dacl",
      [](const std::string& path) {
        cng::DaclInfo info;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::read_dacl(path, info);
        }
        if (!st.ok()) raise_status(st);
        return dacl_dict(info);
      },
      py::arg("path"));

  m.def("current_account", [] {
    cng::AccountInfo info;
    cng::Status st;
    {
      py::gil_scoped_release release;
      st = cng::current_account(info);
    }
    if (!st.ok()) raise_status(st);
    return account_dict(info);
  });

  // Every path of a state directory to one account: the name is looked up once (a gMSA's lookup
  // may ask a domain controller). Stops at the first failure and says which entry it was.
  m.def(
      "set_account_only_dacls",
      [](const std::string& account, const std::vector<std::pair<std::string, bool>>& entries) {
        cng::AccountInfo info;
        const std::vector<std::uint8_t> sid = account_sid(account, info);
        std::string text;
        cng::Status st;
        std::size_t done = 0;
        {
          py::gil_scoped_release release;
          for (; done < entries.size(); ++done) {
            st = cng::set_account_only_dacl(entries[done].first, entries[done].second, sid, text);
            if (!st.ok()) break;
          }
        }
        py::dict d = account_dict(info);
        d["failed"] = st.ok() ? py::object(py::none())
                              : py::object(py::make_tuple(done, st.code(), std::string(st.api)));
        return d;
      },
      py::arg("account"), py::arg("entries"));

  // Machine installs: the account a service runs as, by name.
  m.def(
      "lookup_account",
      [](const std::string& name) {
        cng::AccountInfo info;
        account_sid(name, info);
        return account_dict(info);
      },
      py::arg("name"));
}

}  // namespace

PYBIND11_MODULE(_cng, m) {
  m.doc() = "Native CNG signer core (see entraclaw.cng for the public API).";
  m.attr("backend") = ENTRACLAW_BACKEND;
  m.attr("PADDING_PKCS1") = static_cast<int>(cng::Padding::Pkcs1);
  m.attr("PADDING_PSS") = static_cast<int>(cng::Padding::Pss);

  g_status_error = PyErr_NewException("entraclaw._cng.CngStatusError", PyExc_RuntimeError, nullptr);
  g_closed_error = PyErr_NewException("entraclaw._cng.KeyClosedError", PyExc_RuntimeError, nullptr);
  m.attr("CngStatusError") = py::handle(g_status_error);
  m.attr("KeyClosedError") = py::handle(g_closed_error);
  // Module-local: a global translator (py::register_exception_translator) is
  // consulted for every pybind11 module in the process that shares this ABI.
  // pybind11 docs, Exceptions, "Local vs Global Exception Translators":
  // https://pybind11.readthedocs.io/en/stable/advanced/exceptions.html
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      // args: (hresult as unsigned, api, attempts, reacquires[, orphan hresult, orphan api])
      py::tuple args;
      if (e.orphan.ok()) {
        args = py::make_tuple(e.status.code(), std::string(e.status.api), e.attempts, e.reacquires);
      } else {
        args = py::make_tuple(e.status.code(), std::string(e.status.api), e.attempts, e.reacquires, e.orphan.code(),
                              std::string(e.orphan.api));
      }
      PyErr_SetObject(g_status_error, args.ptr());
    } catch (const ClosedError&) {
      PyErr_SetString(g_closed_error, "the key was closed");
    }
  });

  py::class_<cng::CertKey>(m, "CertKey")
      .def(py::init(&open_key), py::arg("thumbprint"), py::arg("location") = "CurrentUser",
           py::arg("attempts") = 2, py::arg("initial_delay_ms") = 100.0, py::arg("multiplier") = 2.0,
           py::arg("max_delay_ms") = 2000.0)
      .def(
          "sign_digest",
          [](cng::CertKey& self, const py::bytes& digest, int padding) {
            if (padding != static_cast<int>(cng::Padding::Pkcs1) && padding != static_cast<int>(cng::Padding::Pss)) {
              throw py::value_error("padding must be PADDING_PKCS1 or PADDING_PSS");
            }
            auto [data, len] = view(digest);
            if (len != cng::kSha256DigestSize) throw py::value_error("the digest must be 32 bytes (SHA-256)");
            std::vector<std::uint8_t> out;
            cng::SignReport report;
            cng::Status st;
            {
              py::gil_scoped_release release;
              st = self.sign(data, len, static_cast<cng::Padding>(padding), out, report);
            }
            if (!st.ok()) raise_status(st, report.attempts, report.reacquires);
            return to_bytes(out);
          },
          py::arg("digest"), py::arg("padding"))
      .def(
          "set_retry_policy",
          [](cng::CertKey& self, int attempts, double initial_delay_ms, double multiplier, double max_delay_ms) {
            self.set_retry_policy(make_policy(attempts, initial_delay_ms, multiplier, max_delay_ms));
          },
          py::arg("attempts"), py::arg("initial_delay_ms"), py::arg("multiplier"), py::arg("max_delay_ms"))
      .def("properties",
           [](cng::CertKey& self) {
             cng::KeyProperties props;
             cng::Status st;
             {
               py::gil_scoped_release release;
               st = self.properties(props);
             }
             if (!st.ok()) raise_status(st);
             py::dict d;
             d["provider"] = props.provider;
             d["container"] = props.container;
             d["key_length"] = props.length_bits;
             d["impl_type"] = props.impl_type;
             d["hardware"] = props.hardware();
             d["export_policy"] = props.export_policy;
             d["exportable"] = props.exportable();
             d["pss_salt_size"] = props.pss_salt;
             d["key_usage"] = props.key_usage_known ? py::object(py::int_(props.key_usage)) : py::object(py::none());
             return d;
           })
      .def(
          "attestation",
          [](cng::CertKey& self, const std::string& aik, const py::bytes& nonce) {
            auto [n, nlen] = view(nonce);
            const std::vector<std::uint8_t> nonce_bytes(n, n + nlen);
            cng::AttestationData data;
            cng::Status st;
            {
              py::gil_scoped_release release;
              st = self.attestation(aik, nonce_bytes, data);
            }
            if (!st.ok()) raise_status(st);
            auto part = [](const cng::Status& s) { return py::make_tuple(s.code(), std::string(s.api)); };
            py::dict d;
            d["hardware"] = data.hardware;
            d["platform_type"] = data.platform_status.ok() && data.hardware ? py::object(py::str(data.platform_type))
                                                                            : py::object(py::none());
            d["platform_status"] = part(data.platform_status);
            d["ek_certificate"] = data.ek_certificate.empty() ? py::object(py::none()) : py::object(to_bytes(data.ek_certificate));
            d["ek_status"] = part(data.ek_status);
            d["claim"] = data.claim.empty() ? py::object(py::none()) : py::object(to_bytes(data.claim));
            d["claim_status"] = part(data.claim_status);
            return d;
          },
          py::arg("aik") = "", py::arg("nonce") = py::bytes())
      .def("read_access",
           [](cng::CertKey& self) {
             cng::DaclInfo info;
             std::vector<std::string> ace_names;
             cng::Status st;
             {
               py::gil_scoped_release release;
               st = self.read_access(info);
             }
             py::list names;  // "DOMAIN\\name" per ACE, "" where the SID does not map
             {
               py::gil_scoped_release release;
               if (st.ok()) {
                 for (const auto& ace : info.aces) {
                   cng::AccountInfo who;
                   if (!ace.sid_bytes.empty() && cng::describe_sid(ace.sid_bytes, who).ok() && !who.name.empty()) {
                     ace_names.push_back(who.domain.empty() ? who.name : who.domain + "\\" + who.name);
                   } else {
                     ace_names.emplace_back();
                   }
                 }
               }
             }
             if (!st.ok()) raise_status(st);
             for (const auto& name : ace_names) names.append(name);
             py::dict d = dacl_dict(info);
             d["names"] = names;
             return d;
           })
      .def(
          "restrict_access",
          [](cng::CertKey& self, const std::string& account) {
            cng::AccountInfo info;
            const std::vector<std::uint8_t> sid = account_sid(account, info);
            cng::Status st;
            {
              py::gil_scoped_release release;
              st = self.restrict_access(sid);
            }
            if (!st.ok()) raise_status(st);
            return account_dict(info);
          },
          py::arg("account"))
      .def_property_readonly("hardware", &cng::CertKey::hardware)
      .def_property_readonly("pss_salt_size", &cng::CertKey::pss_salt)
      .def("certificate",
           [](cng::CertKey& self) {
             cng::CertificateInfo info;
             cng::Status st;
             {
               py::gil_scoped_release release;
               st = self.certificate(info);
             }
             if (!st.ok()) raise_status(st);
             return certificate_dict(info);
           })
      .def("close", &cng::CertKey::close, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("closed", &cng::CertKey::closed)
      .def_property_readonly("location",
                             [](const cng::CertKey& self) { return cng::store_location_name(self.location()); });

  m.def("status_table", [] {
    std::size_t count = 0;
    const cng::StatusInfo* rows = cng::status_table(&count);
    py::list out;
    for (std::size_t i = 0; i < count; ++i) {
      out.append(py::make_tuple(rows[i].name, rows[i].code, cng::category_name(rows[i].category),
                                cng::action_name(rows[i].action)));
    }
    return out;
  });

  m.def("system_message", [](std::uint32_t code) -> py::object {
    const std::string text = cng::system_message(static_cast<HRESULT>(code));
    if (text.empty()) return py::none();
    return py::str(text);
  });

  m.def(
      "provision_certificate",
      [](const std::string& common_name, const std::string& container, const std::string& provider,
         std::uint32_t key_bits, std::int64_t not_before, std::int64_t not_after, int attempts,
         double initial_delay_ms, double multiplier, double max_delay_ms, const std::string& location) {
        cng::ProvisionRequest request;
        request.location = parse_location(location);
        request.common_name = common_name;
        request.container = container;
        if (provider == "auto") {
          request.provider = cng::ProviderChoice::Auto;
        } else if (provider == "tpm") {
          request.provider = cng::ProviderChoice::Tpm;
        } else if (provider == "software") {
          request.provider = cng::ProviderChoice::Software;
        } else {
          throw py::value_error("provider must be 'auto', 'tpm' or 'software'");
        }
        request.key_bits = key_bits;
        request.not_before = not_before;
        request.not_after = not_after;
        request.policy = make_policy(attempts, initial_delay_ms, multiplier, max_delay_ms);
        cng::ProvisionResult result;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::provision_certificate(request, result);
        }
        if (!st.ok()) {
          if (st.api == cng::kClosedApi) raise_status(st);
          throw StatusError{st, result.tpm_attempts > 0 ? result.tpm_attempts : 1, 0, result.orphan};
        }
        py::dict d;
        d["der"] = to_bytes(result.der);
        d["provider"] = result.provider;
        d["hardware"] = result.hardware;
        d["tpm_hresult"] = result.tpm_failure.code();
        d["tpm_api"] = std::string(result.tpm_failure.api);
        d["tpm_attempts"] = result.tpm_attempts;
        d["usage_hresult"] = result.key_usage_status.code();
        d["usage_api"] = std::string(result.key_usage_status.api);
        return d;
      },
      py::arg("common_name"), py::arg("container"), py::arg("provider"), py::arg("key_bits"), py::arg("not_before"),
      py::arg("not_after"), py::arg("attempts") = 2, py::arg("initial_delay_ms") = 100.0, py::arg("multiplier") = 2.0,
      py::arg("max_delay_ms") = 2000.0, py::arg("location") = "CurrentUser");

  m.def(
      "list_certificates",
      [](const std::string& prefix, const std::string& location) {
        std::vector<cng::ListedCertificate> found;
        cng::Status st;
        const cng::StoreLocation where = parse_location(location);
        {
          py::gil_scoped_release release;
          st = cng::list_certificates(where, prefix, found);
        }
        if (!st.ok()) raise_status(st);
        py::list out;
        for (const auto& item : found) {
          py::dict d = certificate_dict(item.info);
          d["has_key_link"] = item.has_key_link;
          d["provider"] = item.provider;
          d["container"] = item.container;
          out.append(d);
        }
        return out;
      },
      py::arg("prefix"), py::arg("location") = "CurrentUser");

  m.def(
      "delete_certificate",
      [](const std::string& thumbprint, const std::string& location, bool delete_key) {
        const cng::Sha1 hash = parse_thumbprint(thumbprint);
        const cng::StoreLocation where = parse_location(location);
        cng::DeleteOutcome outcome;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::delete_certificate(where, hash, delete_key, outcome);
        }
        if (!st.ok()) raise_status(st);
        py::dict d;
        d["key_deleted"] = outcome.key_deleted;
        d["capi_provider"] = outcome.capi_provider;
        d["key_shared_with"] = outcome.key_shared_with.empty() ? py::object(py::none())
                                                               : py::object(to_bytes(outcome.key_shared_with));
        return d;
      },
      py::arg("thumbprint"), py::arg("location") = "CurrentUser", py::arg("delete_key") = true);

  m.def(
      "protect",
      [](const py::bytes& data, const py::bytes& entropy, const std::string& description) {
        auto [d, dlen] = view(data);
        auto [e, elen] = view(entropy);
        std::vector<std::uint8_t> out;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::protect_data(d, dlen, e, elen, description, out);
        }
        if (!st.ok()) raise_status(st);
        return to_bytes(out);
      },
      py::arg("data"), py::arg("entropy") = py::bytes(), py::arg("description") = "");

  m.def(
      "unprotect",
      [](const py::bytes& blob, const py::bytes& entropy) {
        auto [b, blen] = view(blob);
        auto [e, elen] = view(entropy);
        std::vector<std::uint8_t> out;
        cng::Status st;
        {
          py::gil_scoped_release release;
          st = cng::unprotect_data(b, blen, e, elen, out);
        }
        if (!st.ok()) raise_status(st);
        py::bytes result = to_bytes(out);
        cng::secure_zero(out.data(), out.size());
        return result;
      },
      py::arg("blob"), py::arg("entropy") = py::bytes());

  bind_file_security(m);
}
