/* catalog.h - the user-visible names of the support process (DESIGN 1):
 * categories, priorities, statuses, visibilities.  Every module that
 * reads one of these from a person (rules, commands, `ticket set`)
 * normalizes it here, so spelling is decided in one place. */
#ifndef MD_CATALOG_H
#define MD_CATALOG_H

#include <glib.h>

#define MD_DEFAULT_CATEGORY "Technical Request"
#define MD_DEFAULT_PRIORITY "P3"

#define MD_STATUS_TRIAGE       "Waiting for triage"
#define MD_STATUS_ACKNOWLEDGED "Request acknowledged"
#define MD_STATUS_IN_PROGRESS  "In progress"
#define MD_STATUS_WAITING      "Waiting for customer"
#define MD_STATUS_RESOLVED     "Resolved"
#define MD_STATUS_REOPENED     "Reopened"

/* NULL-terminated lists of the canonical names, in display order. */
extern const char *const md_categories[];
extern const char *const md_priorities[];
extern const char *const md_statuses[];

/* Each returns the canonical static string for a user's spelling, or
 * NULL when it names nothing.  Matching ignores case, and treats runs of
 * spaces, '-' and '_' alike ("in-progress" = "In progress", "p1" = "P1"). */
const char *md_category_normalize (const char *text);
const char *md_priority_normalize (const char *text);
const char *md_status_normalize (const char *text);
const char *md_visibility_normalize (const char *text);

/* Whether a status counts as open (everything but Resolved). */
gboolean md_status_is_open (const char *status);

#endif
