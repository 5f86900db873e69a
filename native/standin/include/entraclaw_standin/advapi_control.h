/* Stand-in control for the advapi32 part (file security, process token).
 * Included by control.h. Test-only.
 */
#ifndef ENTRACLAW_STANDIN_ADVAPI_CONTROL_H
#define ENTRACLAW_STANDIN_ADVAPI_CONTROL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The account the process token reports from now on (tokens opened later).
 * `sid` is S-1-... text; NULL restores the default user account. `name` and
 * `domain` are what LookupAccountSidW answers for it (UTF-8); NULL name makes
 * it unmapped (ERROR_NONE_MAPPED) unless the SID is one of the well-known
 * accounts the stand-in names itself (S-1-5-18/19/20). Returns 0, or -1 for a
 * malformed SID. */
ENTRACLAW_STANDIN_CONTROL int standin_set_current_sid(const char* sid, const char* name, const char* domain);
/* Another account LookupAccountNameW / LookupAccountSidW know (a service
 * account, a gMSA "CONTOSO\\agent$"). Returns 0, or -1 for a bad SID. */
ENTRACLAW_STANDIN_CONTROL int standin_add_account(const char* sid, const char* name, const char* domain);

/* The default user account's SID text (what tokens report after reset). */
ENTRACLAW_STANDIN_CONTROL const char* standin_default_user_sid(void);

/* Number of files with a security descriptor in the stand-in's table. */
ENTRACLAW_STANDIN_CONTROL int standin_file_security_count(void);

#ifdef __cplusplus
}
#endif

#endif /* ENTRACLAW_STANDIN_ADVAPI_CONTROL_H */
