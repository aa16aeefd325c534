/*
 * Unit tests for access codes: the strength policy against large tables of
 * weak codes (each must fail with the named rule) and strong ones (each
 * must pass), the generator's distribution (chi-square over digits and
 * positions on 100k draws) and policy compliance, typed-code
 * normalization, and hashing / sealing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/codes.h"

struct weak_case {
	const char *code;
	const char *rule;
};

/* Weak: hand-written lists by rule. Strong: a seeded random draw screened
 * for patterns by an independent script, then kept fixed. */
static const struct weak_case weak_codes[] = {
    {"000000", "code_all_same"},
    {"111111", "code_all_same"},
    {"2222222", "code_all_same"},
    {"33333333", "code_all_same"},
    {"444444444", "code_all_same"},
    {"5555555555", "code_all_same"},
    {"66666666666", "code_all_same"},
    {"777777777777", "code_all_same"},
    {"888888", "code_all_same"},
    {"99999999", "code_all_same"},
    {"000000000000", "code_all_same"},
    {"11111111", "code_all_same"},
    {"999999", "code_all_same"},
    {"2222222222", "code_all_same"},
    {"555555", "code_all_same"},
    {"66666666", "code_all_same"},
    {"7777777", "code_all_same"},
    {"33333333333", "code_all_same"},
    {"444444", "code_all_same"},
    {"888888888888", "code_all_same"},
    {"00000000", "code_all_same"},
    {"111111111111", "code_all_same"},
    {"999999999999", "code_all_same"},
    {"555555555", "code_all_same"},
    {"666666", "code_all_same"},
    {"123456", "code_sequential"},
    {"234567", "code_sequential"},
    {"345678", "code_sequential"},
    {"456789", "code_sequential"},
    {"567890", "code_sequential"},
    {"678901", "code_sequential"},
    {"789012", "code_sequential"},
    {"890123", "code_sequential"},
    {"901234", "code_sequential"},
    {"012345", "code_sequential"},
    {"654321", "code_sequential"},
    {"765432", "code_sequential"},
    {"876543", "code_sequential"},
    {"987654", "code_sequential"},
    {"098765", "code_sequential"},
    {"109876", "code_sequential"},
    {"210987", "code_sequential"},
    {"321098", "code_sequential"},
    {"432109", "code_sequential"},
    {"543210", "code_sequential"},
    {"12345678", "code_sequential"},
    {"87654321", "code_sequential"},
    {"0123456789", "code_sequential"},
    {"9876543210", "code_sequential"},
    {"123456789012", "code_sequential"},
    {"34567890", "code_sequential"},
    {"2345678901", "code_sequential"},
    {"135791", "code_sequential"},
    {"246802", "code_sequential"},
    {"975319", "code_sequential"},
    {"86420864", "code_sequential"},
    {"13579135", "code_sequential"},
    {"121212", "code_repeated"},
    {"123123", "code_repeated"},
    {"408408", "code_repeated"},
    {"12341234", "code_repeated"},
    {"454545", "code_repeated"},
    {"909090", "code_repeated"},
    {"1231231", "code_repeated"},
    {"12121212", "code_repeated"},
    {"270270", "code_repeated"},
    {"12312312", "code_repeated"},
    {"98769876", "code_repeated"},
    {"123412341234", "code_repeated"},
    {"505050", "code_repeated"},
    {"6868686868", "code_repeated"},
    {"743743", "code_repeated"},
    {"19841984", "code_repeated"},
    {"56565656", "code_repeated"},
    {"102102", "code_repeated"},
    {"31313131", "code_repeated"},
    {"407407407", "code_repeated"},
    {"123321", "code_repeated"},
    {"456654", "code_repeated"},
    {"12344321", "code_repeated"},
    {"1234554321", "code_repeated"},
    {"112233", "code_repeated"},
    {"11223344", "code_repeated"},
    {"998877", "code_repeated"},
    {"001122", "code_repeated"},
    {"20022002", "code_repeated"},
    {"78877887", "code_repeated"},
    {"2580", "code_keypad"},
    {"147258", "code_keypad"},
    {"159753", "code_keypad"},
    {"147852369", "code_keypad"},
    {"1470", "code_keypad"},
    {"258025", "code_keypad"},
    {"147258369", "code_keypad"},
    {"789456123", "code_keypad"},
    {"741852963", "code_keypad"},
    {"963852741", "code_keypad"},
    {"369258147", "code_keypad"},
    {"123654789", "code_keypad"},
    {"147896325", "code_keypad"},
    {"159357", "code_keypad"},
    {"357159", "code_keypad"},
    {"753159", "code_keypad"},
    {"951357", "code_keypad"},
    {"852147", "code_keypad"},
    {"258147", "code_keypad"},
    {"3692580", "code_keypad"},
    {"0852", "code_keypad"},
    {"789654", "code_keypad"},
    {"147963", "code_keypad"},
    {"1236987", "code_keypad"},
    {"12369874", "code_keypad"},
    {"963741", "code_keypad"},
    {"2589", "code_keypad"},
    {"14789632", "code_keypad"},
    {"852456", "code_keypad"},
    {"4785", "code_keypad"},
    {"5896", "code_keypad"},
    {"741236", "code_keypad"},
    {"7410852", "code_keypad"},
    {"0147258", "code_keypad"},
    {"1984", "code_date"},
    {"1999", "code_date"},
    {"2023", "code_date"},
    {"2099", "code_date"},
    {"1900", "code_date"},
    {"311299", "code_date"},
    {"123199", "code_date"},
    {"991231", "code_date"},
    {"290200", "code_date"},
    {"010190", "code_date"},
    {"121287", "code_date"},
    {"251290", "code_date"},
    {"870704", "code_date"},
    {"19870704", "code_date"},
    {"04071987", "code_date"},
    {"07041987", "code_date"},
    {"31121999", "code_date"},
    {"01012000", "code_date"},
    {"20240229", "code_date"},
    {"29022024", "code_date"},
    {"12252005", "code_date"},
    {"25122005", "code_date"},
    {"20011109", "code_date"},
    {"09112001", "code_date"},
    {"11092001", "code_date"},
    {"19450508", "code_date"},
    {"18061990", "code_date"},
    {"061990", "code_date"},
    {"199006", "code_date"},
    {"1011990", "code_date"},
    {"7041987", "code_date"},
    {"30061985", "code_date"},
    {"03151992", "code_date"},
    {"15031992", "code_date"},
    {"19920315", "code_date"},
    {"112121", "code_few_distinct"},
    {"221121", "code_few_distinct"},
    {"1221112", "code_few_distinct"},
    {"1122121", "code_few_distinct"},
    {"11221221", "code_few_distinct"},
    {"13113131", "code_few_distinct"},
    {"12122112", "code_few_distinct"},
    {"331313", "code_few_distinct"},
    {"1112111", "code_few_distinct"},
    {"22020202", "code_few_distinct"},
    {"6606006", "code_few_distinct"},
    {"11100101", "code_few_distinct"},
    {"99919991", "code_few_distinct"},
    {"77737737", "code_few_distinct"},
    {"45545544", "code_few_distinct"},
    {"12211211", "code_few_distinct"},
    {"21121221", "code_few_distinct"},
    {"3003330", "code_few_distinct"},
    {"505500", "code_few_distinct"},
    {"9090909", "code_few_distinct"},
    {"12131213", "code_few_distinct"},
    {"10101100", "code_few_distinct"},
    {"88188818", "code_few_distinct"},
    {"67676676", "code_few_distinct"},
    {"11112112", "code_few_distinct"},
    {"40044040", "code_few_distinct"},
    {"2202202022", "code_few_distinct"},
    {"36633663", "code_few_distinct"},
    {"100100100", "code_few_distinct"},
    {"520520", "code_common"},
    {"131420", "code_common"},
    {"201314", "code_common"},
    {"584520", "code_common"},
    {"5201314", "code_common"},
    {"1314520", "code_common"},
    {"5211314", "code_common"},
    {"314159", "code_common"},
    {"3141592", "code_common"},
    {"31415926", "code_common"},
    {"271828", "code_common"},
    {"27182818", "code_common"},
    {"141421", "code_common"},
    {"14142135", "code_common"},
    {"142857", "code_common"},
    {"8675309", "code_common"},
    {"4815162342", "code_common"},
    {"48151623", "code_common"},
    {"11235813", "code_common"},
    {"1123581321", "code_common"},
    {"521521", "code_common"},
    {"110110", "code_common"},
    {"112358", "code_common"},
    {"86753090", "code_common"},
    {"08675309", "code_common"},
    {"2718281828", "code_common"},
};

static const char *const strong_codes[] = {
    "11066580351",  "37459081366",  "9521593360",   "26644338",
    "475303311119", "106049698",    "520318389",    "68969670",
    "508667006",    "20679049946",  "57090128",     "1013457521",
    "683796901",    "727158121088", "7786989",      "71623239637",
    "54933941",     "967384",       "65298945",     "3638242",
    "848184387125", "734412",       "249549938",    "87694257213",
    "062442797",    "9507518",      "30429337",     "5796406628",
    "58533900",     "99613292",     "4317498",      "776261",
    "431763",       "5567332547",   "627038288",    "80498613",
    "50571113091",  "68361960917",  "6292805",      "052479484",
    "437414",       "47166215",     "80391812",     "18405062",
    "2706518245",   "02465566",     "396687326863", "203377888765",
    "82742966686",  "323609",       "716877432",    "357073",
    "38708694",     "409277",       "8142543626",   "6162604250",
    "5625916040",   "728775618242", "21607918359",  "384108677",
    "706259",       "874095891809", "681381255",    "891397795327",
    "433383822256", "7474910",      "366581",       "045320916",
    "34011651",     "89468741",     "43026858",     "71544172567",
    "04974024",     "183575",       "438849304335", "65471086",
    "647842748442", "7944546591",   "1988804755",   "45110679",
    "210808582",    "51027720",     "9301429",      "971339646",
    "62554623932",  "68253416",     "6205250135",   "20625384495",
    "90626452",     "70446358375",  "98390304",     "48152065230",
    "84000099093",  "186668495",    "86775507",     "476738",
    "41982745304",  "5770906015",   "93571884980",  "79895044708",
    "50637836",     "2851124403",   "597253695",    "85687464241",
    "808402",       "64292569",     "40615384716",  "484511534",
    "709037802272", "268419",       "102165622",    "34177120",
    "5461907269",   "4705615",      "12202415845",  "02142827",
    "23494938",     "8602123",      "685517747",    "314403650196",
    "00585114",     "14017629",     "295133",       "72616815",
    "6387119",      "273005589",    "743941",       "52429169",
    "064631734726", "503018429",    "78323617",     "680667480696",
    "34079001",     "52252967030",  "854780470",    "86153008673",
    "065041237492", "813083",       "1130878",      "68272964",
    "205985783497", "198880795004", "59966704",     "47017805368",
    "776140752946", "56464420290",  "802355700",    "454273830",
    "25139223957",  "80639289227",  "804813221",    "30153648117",
    "57518830",     "44201688063",  "9023266",      "26285395891",
    "84730714",     "996937129",    "818499014543", "1399904990",
    "7177219",      "0715418421",   "23451343",     "0423086214",
    "44278823",     "601851991",    "4357268",      "82098662",
    "62295033154",  "983479700012", "55083464",     "629311045",
    "2388116",      "18715383089",  "51387379",     "583131",
    "3640166",      "377295",       "681320484",    "8199597",
    "54049472",     "49923533",     "3718290",      "4590876668",
    "02843648211",  "38536954338",  "70266910406",  "6631215",
    "198393251832", "070713606393", "96879647",     "7039386138",
    "889770",       "80391460",     "6478557109",   "97400028",
    "00798848",     "184920530",    "93849098",     "0729837",
    "99009732467",  "07049227",     "51448680",     "8403647",
    "858498374067", "634041220",    "3851939745",   "34816333",
    "02334075191",  "38518843",     "04917362",     "00729154",
    "0815372694",   "008273615",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int
rule_index(const char *name)
{
	for (int i = 0; i < GATE_CR_COUNT; i++)
		if (strcmp(gate_code_rule_name(i), name) == 0)
			return i;
	return -1;
}

static void
weak_codes_fail_with_their_rule(void **state)
{
	struct gate_code_policy p;
	struct gate_code_verdict v;
	size_t bad = 0;

	(void)state;
	gate_code_policy_default(&p);
	assert_true(N(weak_codes) >= 200);
	for (size_t i = 0; i < N(weak_codes); i++) {
		const struct weak_case *w = &weak_codes[i];
		int rule = rule_index(w->rule);

		assert_true(rule >= 0);
		if (gate_code_check(&p, w->code, strlen(w->code), &v) != 1 ||
		    (v.failed & (1u << rule)) == 0) {
			print_message("weak code %s: expected %s, got %s\n",
			              w->code, w->rule,
			              v.first >= 0
			                  ? gate_code_rule_name(v.first)
			                  : "pass");
			bad++;
			continue;
		}
		assert_true(v.first >= 0);
		assert_true(strlen(v.why[rule]) > 20);
	}
	assert_int_equal(bad, 0);
}

static void
strong_codes_pass(void **state)
{
	struct gate_code_policy p;
	struct gate_code_verdict v;
	size_t bad = 0;

	(void)state;
	gate_code_policy_default(&p);
	assert_true(N(strong_codes) >= 200);
	for (size_t i = 0; i < N(strong_codes); i++) {
		if (gate_code_check(&p, strong_codes[i],
		                    strlen(strong_codes[i]), &v) != 0) {
			print_message("strong code %s rejected: %s: %s\n",
			              strong_codes[i],
			              gate_code_rule_name(v.first),
			              v.why[v.first]);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
messages_explain_the_rule(void **state)
{
	struct gate_code_policy p;
	struct gate_code_verdict v;

	(void)state;
	gate_code_policy_default(&p);
	assert_int_equal(gate_code_check(&p, "123456", 6, &v), 1);
	assert_int_equal(v.first, GATE_CR_SEQUENTIAL);
	assert_non_null(strstr(v.why[GATE_CR_SEQUENTIAL],
	                       "123456 is a run of consecutive digits"));
	assert_int_equal(gate_code_check(&p, "31121999", 8, &v), 1);
	assert_non_null(strstr(v.why[GATE_CR_DATE], "DDMMYYYY"));
	assert_non_null(strstr(v.why[GATE_CR_DATE], "31 Dec 1999"));
	/* 30 Feb is no date; 29 Feb only in leap years. */
	assert_int_equal(gate_code_check(&p, "30029174", 8, &v), 0);
	assert_int_equal(v.failed & (1u << GATE_CR_DATE), 0);
	assert_int_equal(gate_code_check(&p, "29021900", 8, &v) == 1 &&
	                     (v.failed & (1u << GATE_CR_DATE)),
	                 0);
	assert_int_equal(gate_code_check(&p, "29022000", 8, &v), 1);
	assert_true(v.failed & (1u << GATE_CR_DATE));
	/* Length limits. */
	assert_int_equal(gate_code_check(&p, "70461", 5, &v), 1);
	assert_int_equal(v.first, GATE_CR_LENGTH);
	assert_int_equal(gate_code_check(&p, "7046192835701", 13, &v), 1);
	assert_int_equal(v.first, GATE_CR_LENGTH);
	/* Not digits: a caller bug, not a verdict. */
	assert_int_equal(gate_code_check(&p, "12a456", 6, &v), -1);
}

static void
policy_is_configurable(void **state)
{
	struct gate_code_policy p;
	struct gate_code_verdict v;
	char err[256];
	unsigned m;

	(void)state;
	assert_int_equal(gate_code_rules_parse("all", &m, err, sizeof(err)), 0);
	assert_int_equal(m, GATE_CR_ALL);
	assert_int_equal(gate_code_rules_parse("sequential, code_date", &m, err,
	                                       sizeof(err)),
	                 0);
	assert_int_equal(m, (1u << GATE_CR_LENGTH) |
	                        (1u << GATE_CR_SEQUENTIAL) |
	                        (1u << GATE_CR_DATE));
	assert_int_equal(
	    gate_code_rules_parse("sequential,bogus", &m, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "bogus"));

	gate_code_policy_default(&p);
	p.rules = (1u << GATE_CR_LENGTH) | (1u << GATE_CR_DATE);
	assert_int_equal(gate_code_check(&p, "123456", 6, &v), 0);
	assert_int_equal(gate_code_check(&p, "311299", 6, &v), 1);
	p.min_length = 10;
	assert_int_equal(gate_code_check(&p, "70461928", 8, &v), 1);
	assert_int_equal(v.first, GATE_CR_LENGTH);
	assert_non_null(strstr(v.why[GATE_CR_LENGTH], "at least 10"));
}

/* Pearson's statistic against a uniform expectation. */
static double
chi_square(const unsigned long *counts, int bins, unsigned long total)
{
	double expect = (double)total / bins, x = 0;

	for (int i = 0; i < bins; i++) {
		double d = (double)counts[i] - expect;

		x += d * d / expect;
	}
	return x;
}

/* df = 9, p = 0.0001. */
#define CHI2_CRIT_9 33.72

static void
chi_square_detects_bias(void **state)
{
	unsigned long c[10];

	(void)state;
	for (int i = 0; i < 10; i++)
		c[i] = 10000;
	assert_true(chi_square(c, 10, 100000) < CHI2_CRIT_9);
	/* What "digit = byte % 10" on bytes would give: 0-5 favoured. */
	for (int i = 0; i < 10; i++)
		c[i] = i < 6 ? 10156 : 9766;
	assert_true(chi_square(c, 10, 100000) > CHI2_CRIT_9);
}

/*
 * Draws 100k codes of 8 digits under policy p; fails if any draw fails p,
 * or if a position's digits (or all digits together, when check_all) are
 * not uniform by Pearson's chi-square at critical value crit.
 */
static void
draw_and_test(const struct gate_code_policy *p, double crit, int check_all)
{
	enum { DRAWS = 100000, LEN = 8 };
	unsigned long pos[LEN][10], all[10];
	struct gate_code_verdict v;
	char code[GATE_CODE_BUF];
	unsigned long lead0 = 0;
	double x;

	memset(pos, 0, sizeof(pos));
	memset(all, 0, sizeof(all));
	for (int i = 0; i < DRAWS; i++) {
		assert_int_equal(gate_code_generate(p, LEN, code, sizeof(code)),
		                 0);
		assert_int_equal(strlen(code), LEN);
		if (gate_code_check(p, code, LEN, &v) != 0)
			fail_msg("generated code failed %s",
			         gate_code_rule_name(v.first));
		for (int j = 0; j < LEN; j++) {
			pos[j][code[j] - '0']++;
			all[code[j] - '0']++;
		}
		if (code[0] == '0')
			lead0++;
	}
	for (int j = 0; j < LEN; j++) {
		x = chi_square(pos[j], 10, DRAWS);
		if (x >= crit)
			fail_msg("position %d: chi-square %.2f", j, x);
	}
	x = chi_square(all, 10, (unsigned long)DRAWS * LEN);
	if (check_all && x >= crit)
		fail_msg("all digits: chi-square %.2f", x);
	/* Leading zeros are codes like any other (about a tenth). */
	assert_true(lead0 > DRAWS / 12 && lead0 < DRAWS / 8);
	sodium_memzero(code, sizeof(code));
}

/* The raw draw (no pattern rule on) is uniform over digits and positions:
 * no modulo bias, leading zeros included. */
static void
generator_draws_uniform_digits(void **state)
{
	struct gate_code_policy p;

	(void)state;
	gate_code_policy_default(&p);
	p.rules = 1u << GATE_CR_LENGTH;
	draw_and_test(&p, CHI2_CRIT_9, 1);
}

/*
 * With the full policy every generated code passes it. Redrawing the ~2%
 * of 8-digit draws that fail makes the result uniform over passing codes,
 * which shifts digit frequencies slightly (keypad walks favour 5 and 8),
 * visible over 800k digits but far below gross bias per position: checked
 * per position at p = 1e-6 (df 9: 45.6).
 */
static void
generator_codes_pass_policy(void **state)
{
	struct gate_code_policy p;

	(void)state;
	gate_code_policy_default(&p);
	draw_and_test(&p, 45.6, 0);
}

static void
generator_lengths(void **state)
{
	struct gate_code_policy p;
	struct gate_code_verdict v;
	char code[GATE_CODE_BUF];

	(void)state;
	gate_code_policy_default(&p);
	for (int len = GATE_CODE_MIN_LEN; len <= GATE_CODE_MAX_LEN; len++) {
		for (int i = 0; i < 2000; i++) {
			assert_int_equal(
			    gate_code_generate(&p, len, code, sizeof(code)), 0);
			assert_int_equal(strlen(code), (size_t)len);
			assert_int_equal(
			    gate_code_check(&p, code, (size_t)len, &v), 0);
		}
	}
	assert_int_equal(gate_code_generate(&p, 5, code, sizeof(code)), -1);
	assert_int_equal(gate_code_generate(&p, 13, code, sizeof(code)), -1);
	assert_int_equal(gate_code_generate(&p, 8, code, 8), -1);
}

static void
normalize_accepts_separators_and_unicode_digits(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"12345678", "12345678"},
	    {"1234 5678", "12345678"},
	    {"1234-5678", "12345678"},
	    {" 12.34.56.78 ", "12345678"},
	    {"0012-3456", "00123456"},
	    /* full-width */
	    {"\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93\xEF\xBC\x94"
	     "\xEF\xBC\x95\xEF\xBC\x96\xEF\xBC\x97\xEF\xBC\x98",
	     "12345678"},
	    /* Arabic-Indic 9 0 1 2, then ASCII, NBSP between */
	    {"\xD9\xA9\xD9\xA0\xD9\xA1\xD9\xA2\xC2\xA0"
	     "3456",
	     "90123456"},
	    /* Extended Arabic-Indic (Persian) and Devanagari */
	    {"\xDB\xB7\xDB\xB8\xE0\xA5\xAC\xE0\xA5\xAF"
	     "1234",
	     "78691234"},
	    /* en dash and ideographic space */
	    {"1234\xE2\x80\x93"
	     "5678\xE3\x80\x80",
	     "12345678"},
	};
	char out[GATE_CODE_BUF], err[256];
	size_t n;

	(void)state;
	for (size_t i = 0; i < N(ok); i++) {
		int r = gate_code_normalize(ok[i].in, strlen(ok[i].in), 8, out,
		                            sizeof(out), &n, err, sizeof(err));

		if (r != GATE_CODE_OK)
			fail_msg("case %zu: %s", i, err);
		assert_string_equal(out, ok[i].out);
		assert_int_equal(n, 8);
	}
}

static void
normalize_rejects_with_a_reason(void **state)
{
	char out[GATE_CODE_BUF], err[256];
	size_t n;

	(void)state;
	assert_int_equal(gate_code_normalize("1234567", 7, 8, out, sizeof(out),
	                                     &n, err, sizeof(err)),
	                 GATE_CODE_ELENGTH);
	assert_non_null(strstr(err, "this meeting's code has 8 digits; you "
	                            "typed 7"));
	assert_non_null(strstr(err, "missing leading zero"));
	assert_null(strstr(err, "1234567"));
	assert_int_equal(gate_code_normalize("123456789", 9, 8, out,
	                                     sizeof(out), &n, err, sizeof(err)),
	                 GATE_CODE_ELENGTH);
	assert_non_null(strstr(err, "you typed 9"));
	assert_int_equal(gate_code_normalize("1234x678", 8, 8, out, sizeof(out),
	                                     &n, err, sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_non_null(strstr(err, "'x' (character 5) is not a digit"));
	assert_int_equal(gate_code_normalize("1234\t5678", 9, 8, out,
	                                     sizeof(out), &n, err, sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_non_null(strstr(err, "U+0009"));
	/* superscript two is not a decimal digit (No, not Nd) */
	assert_int_equal(gate_code_normalize("1234567\xC2\xB2", 9, 8, out,
	                                     sizeof(out), &n, err, sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_non_null(strstr(err, "U+00B2"));
	/* invalid UTF-8: a lone continuation byte, an overlong '1' */
	assert_int_equal(gate_code_normalize("1234\x80"
	                                     "567",
	                                     8, 8, out, sizeof(out), &n, err,
	                                     sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_non_null(strstr(err, "UTF-8"));
	assert_int_equal(gate_code_normalize("\xC0\xB1"
	                                     "2345678",
	                                     9, 8, out, sizeof(out), &n, err,
	                                     sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_int_equal(gate_code_normalize(" - . ", 5, 8, out, sizeof(out),
	                                     &n, err, sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_non_null(strstr(err, "no digits"));
	assert_int_equal(gate_code_normalize("12345678901234", 14, 0, out,
	                                     sizeof(out), &n, err, sizeof(err)),
	                 GATE_CODE_EFORMAT);
	assert_string_equal(out, "");
}

static void
hash_is_keyed_and_bound_to_the_meeting(void **state)
{
	unsigned char k1[32], k2[32], h1[32], h2[32], h3[32], h4[32];

	(void)state;
	randombytes_buf(k1, sizeof(k1));
	randombytes_buf(k2, sizeof(k2));
	gate_code_hash(k1, "m-1", "70461928", 8, h1);
	gate_code_hash(k1, "m-1", "70461928", 8, h2);
	assert_memory_equal(h1, h2, 32);
	gate_code_hash(k1, "m-2", "70461928", 8, h3);
	assert_memory_not_equal(h1, h3, 32);
	gate_code_hash(k2, "m-1", "70461928", 8, h4);
	assert_memory_not_equal(h1, h4, 32);
	gate_code_hash(k1, "m-1", "70461929", 8, h4);
	assert_memory_not_equal(h1, h4, 32);
}

static void
seal_roundtrip_and_tamper(void **state)
{
	unsigned char k1[32], k2[32], box[GATE_CODE_SEALED_MAX],
	    box2[GATE_CODE_SEALED_MAX];
	char out[GATE_CODE_BUF];
	size_t n, n2;

	(void)state;
	randombytes_buf(k1, sizeof(k1));
	randombytes_buf(k2, sizeof(k2));
	assert_int_equal(
	    gate_code_seal(k1, "004917362815", 12, box, sizeof(box), &n), 0);
	assert_int_equal(n, 24 + 16 + 12);
	assert_null(memmem(box, n, "004917362815", 12));
	assert_int_equal(gate_code_unseal(k1, box, n, out, sizeof(out)), 0);
	assert_string_equal(out, "004917362815");
	/* A fresh nonce each time. */
	assert_int_equal(
	    gate_code_seal(k1, "004917362815", 12, box2, sizeof(box2), &n2), 0);
	assert_memory_not_equal(box, box2, n);
	assert_int_equal(gate_code_unseal(k2, box, n, out, sizeof(out)), -1);
	box[30] ^= 1;
	assert_int_equal(gate_code_unseal(k1, box, n, out, sizeof(out)), -1);
	assert_int_equal(gate_code_unseal(k1, box, 20, out, sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(weak_codes_fail_with_their_rule),
	    cmocka_unit_test(strong_codes_pass),
	    cmocka_unit_test(messages_explain_the_rule),
	    cmocka_unit_test(policy_is_configurable),
	    cmocka_unit_test(chi_square_detects_bias),
	    cmocka_unit_test(generator_draws_uniform_digits),
	    cmocka_unit_test(generator_codes_pass_policy),
	    cmocka_unit_test(generator_lengths),
	    cmocka_unit_test(normalize_accepts_separators_and_unicode_digits),
	    cmocka_unit_test(normalize_rejects_with_a_reason),
	    cmocka_unit_test(hash_is_keyed_and_bound_to_the_meeting),
	    cmocka_unit_test(seal_roundtrip_and_tamper),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
