/* forms.h - intake forms (filters/forms.conf, maildesk.forms(5)): what
 * each kind of request must supply, how a field is recognised in a mail
 * and how its value is checked.
 *
 * The file is INI-like, read line by line so that every mistake has a
 * file:line:
 *
 *     [field license_key]
 *     label    = License key
 *     synonyms = Licence key, License, Licence
 *     type     = text
 *
 *     [form environment-deployment]
 *     category = New Environment Request
 *     require  = country, environment_type, license_key
 *     estimate = 2-3
 *
 * A form applies to a ticket when all its conditions hold (category,
 * tag, match); the first form in the file that applies is the ticket's.
 * Pure data and text: nothing here touches a ticket or the store (that
 * is intake.c). */
#ifndef MD_FORMS_H
#define MD_FORMS_H

#include <glib.h>

#define MD_FORMS_MAX_SIZE (256 * 1024)   /* bytes of a forms file */
#define MD_FORMS_MAX_FIELDS 200
#define MD_FORMS_MAX_FORMS 100
#define MD_FORMS_MAX_VALUE 500           /* bytes of a recognised value */

typedef enum {
	MD_FIELD_TEXT,       /* anything non-empty */
	MD_FIELD_EMAIL,      /* local@domain */
	MD_FIELD_DOMAIN,     /* shop.example.com */
	MD_FIELD_DOMAINS,    /* a list of domains, comma- or space-separated */
	MD_FIELD_VERSION,    /* 5.1, 5.1.3, v6.0.0-rc1 */
	MD_FIELD_DATE,       /* YYYY-MM-DD */
	MD_FIELD_NUMBER,     /* 1200, 1,200, ~5000, 10k */
	MD_FIELD_SSH_REPO,   /* git@host:org/repo.git or ssh://[user@]host[:port]/path */
	MD_FIELD_CHOICE,     /* one of the field's choices, case ignored */
} MdFieldType;

typedef struct _MdForms MdForms;
typedef struct _MdForm MdForm;
typedef struct _MdFormField MdFormField;

/* Parses a forms file from memory; FILENAME only names it in errors.
 * Every problem is reported, one "file:line: message" per line of the
 * error (MD_ERROR_CONFIG).  Reference-counted (a reload replaces the
 * desk's set while a ticket is still using the old one): release with
 * md_forms_unref. */
MdForms *md_forms_new_from_data (const char *filename, const char *data, gsize len, GError **error);
MdForms *md_forms_load_file (const char *path, GError **error);
MdForms *md_forms_ref (MdForms *forms);
void md_forms_unref (MdForms *forms);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdForms, md_forms_unref)

/* The first form that applies to a ticket with this category, these
 * comma-separated TAGS (may be NULL), SUBJECT and BODY; NULL when none.
 * Owned by FORMS. */
const MdForm *md_forms_match (const MdForms *forms, const char *category, const char *tags, const char *subject,
                              const char *body);
/* The form of this name; NULL when none.  Owned by FORMS. */
const MdForm *md_forms_get (const MdForms *forms, const char *name);

const char *md_form_name (const MdForm *form);
/* The delivery estimate in working days: FALSE when the form has none;
 * *investigation_r TRUE for "investigation" (and the days 0). */
gboolean md_form_estimate (const MdForm *form, int *min_days_r, int *max_days_r, gboolean *investigation_r);
/* The notice rule of a go-live form: the date field and the days of
 * notice required; NULL when the form has none.  Owned by the form. */
const MdFormField *md_form_notice (const MdForm *form, int *days_r);
/* The tag a ticket of this form gets when its notice is short; static
 * or owned by the form, never NULL. */
const char *md_form_notice_tag (const MdForm *form);
/* The required fields, in the file's order (MdFormField*, owned by the
 * form's set). */
const GPtrArray *md_form_required (const MdForm *form);
/* Whether any form of FORMS (may be NULL) requires a field: whether a
 * customer may ever be asked for one. */
gboolean md_forms_require_any (const MdForms *forms);

const char *md_form_field_name (const MdFormField *field);
const char *md_form_field_label (const MdFormField *field);
/* How to write the value, for a question mail: "in SSH form, e.g.
 * git@github.com:org/repo.git"; "" when nothing needs saying. */
const char *md_form_field_hint (const MdFormField *field);
/* Whether a value supplied on an earlier ticket by the same requester
 * counts for a new one (license key, company). */
gboolean md_form_field_remembered (const MdFormField *field);

/* Checks VALUE against the field's type.  Returns the value to store
 * (normalized: trimmed, "uat" -> "UAT", domains lowercased), or NULL
 * with *problem_r set to one sentence saying what is wrong.  Free the
 * result and *problem_r with g_free. */
char *md_form_field_validate (const MdFormField *field, const char *value, char **problem_r);

/* Checks a value against a bare type (CHOICES for MD_FIELD_CHOICE);
 * the same contract as md_form_field_validate. */
char *md_forms_validate (MdFieldType type, const char *const *choices, const char *value, char **problem_r);

/* One `Label: value` line of a mail recognised as a field. */
typedef struct {
	const MdFormField *field;   /* owned by the forms */
	char *value;                /* normalized, or NULL when invalid */
	char *given;                /* as written */
	char *problem;              /* why it is invalid, or NULL */
} MdFormEntry;
void md_form_entry_free (MdFormEntry *entry);

/* The fields of FORM (required ones, and any other the form knows)
 * written as `Label: value` lines in TEXT: label or synonym in any case,
 * any order, one per line, quoted lines (">") skipped, empty values
 * ignored.  For each field the first valid value wins, else the first
 * invalid one.  MdFormEntry* in the order of the form; free with
 * g_ptr_array_unref. */
GPtrArray *md_form_recognize (const MdForm *form, const char *text);

#endif
