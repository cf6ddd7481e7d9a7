"""The journeys of issue 7 in a real browser, in order, sharing one server per dialect:
a tutor onboards (an admin approves with TOTP), a student signs up, verifies the email
from the dev mailbox, searches, books, pays in the sandbox and sees the lesson; the
tutor sees it; a parent adds a child and books for the child; the main pages at
phone width. Every visited main page is screenshotted and checked by axe-core."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, PASSWORD, Server, check_page
from tests.waiting import deadline

pytestmark = pytest.mark.browser


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}@e2e.example"


def sign_up(page, *, name: str, email: str, role: str) -> None:
    page.goto(f"/app/signup?role={role}")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator(f"input[name=role][value={role}]").check()
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/app\?welcome=1$"))


def sign_in(page, email: str, *, totp=None) -> None:
    page.goto("/app/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    if totp is not None:
        page.wait_for_url(re.compile(r"/app/mfa"))
        check_page(page, "mfa-challenge")
        page.get_by_label("6-digit code").fill(totp.now())
        page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/app$|/app\?"))


def pay_in_sandbox(page, plan: str = "Single lesson") -> None:
    """From a held booking's page: buy a plan, pay on the sandbox page, come back, and
    wait, without reloading, until the page shows the webhook job confirmed the booking
    (while it confirms, the page polls and offers no second payment)."""
    page.get_by_role("button", name=f"Buy {plan}").click()
    page.wait_for_url(re.compile(r"/billing/sandbox/checkout/"))
    check_page(page, "sandbox-checkout", axe=False)  # the billing engineer's page
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(re.compile(r"/app/bookings/.+paid=1"))
    if page.get_by_role("heading", name="Pay to confirm your lesson").count():
        assert page.get_by_role("button", name=re.compile("^Buy")).count() == 0
    page.get_by_role("heading", name="Lesson booked").wait_for(timeout=deadline(60) * 1000)


def test_tutor_signs_up_is_approved_and_sets_availability(pages, server: Server) -> None:
    page = pages.open()
    page.goto("/")
    check_page(page, "landing")
    page.get_by_role("link", name="Publish your tutor profile").click()
    email = unique("tutor")
    sign_up(page, name="Tomás Tutor", email=email, role="tutor")
    check_page(page, "dashboard-tutor-new")
    page.get_by_role("link", name="Create my profile").click()
    page.get_by_label("Headline").fill("Algebra without tears")
    page.get_by_label("About you").fill("I teach **algebra** to secondary students.")
    page.get_by_label("— Algebra").select_option("secondary")
    page.get_by_label("English").check()
    page.get_by_label("Your time zone").select_option("Europe/Madrid")
    page.get_by_label("Meeting link").fill("https://meet.example/tomas")
    page.locator("#bio-preview strong", has_text="algebra").wait_for()  # live preview
    check_page(page, "profile-editor")
    page.get_by_role("button", name="Save and send for review").click()
    page.get_by_text("It is waiting for an admin's review").wait_for()

    admin = pages.open()
    sign_in(admin, ADMIN_EMAIL, totp=server.admin_totp)
    admin.goto("/admin")
    check_page(admin, "admin-overview")
    admin.get_by_role("link", name="Tutor approvals").click()
    admin.get_by_role("heading", name="Tomás Tutor").wait_for()
    check_page(admin, "admin-tutors")
    admin.get_by_role("button", name="Approve Tomás Tutor").click()
    admin.get_by_text("Profile approved and published.").wait_for()
    for name in ("users", "bookings", "billing", "audit"):
        admin.goto(f"/admin/{name}")
        check_page(admin, f"admin-{name}")
    assert admin.get_by_text("tutor_profile.approved").count()

    page.goto("/app")
    page.get_by_role("link", name="Availability").click()
    for day in range(7):
        page.locator(f"input[name=d{day}_0_start]").fill("08:00")
        page.locator(f"input[name=d{day}_0_end]").fill("20:00")
    page.get_by_role("button", name="Save availability").click()
    page.get_by_text("Availability saved.").wait_for()
    check_page(page, "availability")
    page.goto("/app/profile")
    profile_link = page.get_by_role("link", name="see your public page").get_attribute("href")
    server.shared.update(tutor_email=email, tutor_path=profile_link)


def test_student_signs_up_verifies_searches_books_and_pays(pages, server: Server) -> None:
    assert "tutor_path" in server.shared, "the tutor journey runs first"
    page = pages.open()
    email = unique("student")
    sign_up(page, name="Sam Student", email=email, role="student")
    page.get_by_text("Confirm your address").wait_for()

    page.goto("/dev/mailbox")
    page.locator("tr", has_text=email).get_by_role("link").first.click()
    link = page.locator("a[href*='/auth/verify?token=']").first.get_attribute("href")
    page.goto(link)
    check_page(page, "verify-email")
    page.get_by_role("button", name="Confirm my address").click()
    page.get_by_role("heading", name="Address confirmed").wait_for()

    page.goto("/tutors")
    check_page(page, "directory")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Subject or keyword").fill("algebra")
    page.locator("#results").get_by_role("link", name="Tomás Tutor", exact=True).wait_for()
    assert page.evaluate("window.__sameDocument === true"), "the results reloaded the page"
    page.wait_for_url(re.compile(r"/tutors\?.*q=algebra"))  # the address is shareable
    page.locator("#results").get_by_role("link", name="Tomás Tutor", exact=True).click()
    page.get_by_role("heading", name="Tomás Tutor").wait_for()
    assert page.get_by_text("Times are shown in").count()
    page.locator("#slot-picker a.slot").first.wait_for()
    check_page(page, "tutor-profile")
    first_day = page.locator("#slot-picker .slot-day h3").first.text_content()
    page.get_by_role("link", name="Later ›").click()  # next week: free cancellation applies
    page.wait_for_function(
        "d => document.querySelector('#slot-picker .slot-day h3').textContent !== d", arg=first_day)
    page.locator("#slot-picker a.slot").first.click()
    page.get_by_role("heading", name="Book a lesson").wait_for()
    check_page(page, "book")
    page.get_by_role("button", name="Book").click()
    page.get_by_role("heading", name="Pay to confirm your lesson").wait_for()
    check_page(page, "booking-held")
    pay_in_sandbox(page)
    check_page(page, "booking-confirmed")
    ics = page.get_by_role("link", name="Add to calendar").get_attribute("href")
    calendar = page.request.get(ics)
    assert calendar.ok and "BEGIN:VCALENDAR" in calendar.text()
    booking_path = page.url.split(server.url)[1].split("?")[0]

    page.goto(booking_path + "/cancel")
    page.get_by_text("Free cancellation").wait_for()  # the consequence, before confirming
    check_page(page, "cancel")
    page.get_by_role("link", name="Keep it").click()

    page.goto("/app")
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Upcoming lessons"))
    upcoming.get_by_text("Tomás Tutor").wait_for()
    check_page(page, "dashboard-student")
    page.goto("/app/account")
    check_page(page, "account")
    server.shared.update(student_email=email, booking_path=booking_path)


def test_tutor_sees_the_students_booking(pages, server: Server) -> None:
    assert "booking_path" in server.shared
    page = pages.open()
    sign_in(page, server.shared["tutor_email"])
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Upcoming lessons"))
    upcoming.get_by_text("Sam Student").wait_for()
    check_page(page, "dashboard-tutor")
    page.get_by_role("link", name="Calendar").click()
    page.get_by_role("link", name="Next week ›").click()
    page.locator(".week").get_by_text("Sam Student").wait_for()
    check_page(page, "calendar")
    page.goto(server.shared["booking_path"])
    page.get_by_label("Lesson notes (the student sees them)").fill("Bring last week's homework.")
    page.get_by_role("button", name="Save notes").click()
    page.get_by_text("Bring last week's homework.").first.wait_for()


def test_parent_adds_a_child_and_books_for_the_child(pages, server: Server) -> None:
    assert "tutor_path" in server.shared
    page = pages.open()
    sign_up(page, name="Priya Parent", email=unique("parent"), role="parent")
    page.get_by_role("link", name="Manage children").click()
    page.get_by_label("Child's name").fill("Kiran")
    page.get_by_role("button", name="Add child").click()
    page.get_by_text("Child added.").wait_for()
    check_page(page, "children")
    page.goto(server.shared["tutor_path"])
    page.locator("#slot-picker a.slot").first.click()
    page.get_by_label("Lesson for").select_option(label="Kiran")
    page.get_by_role("button", name="Book").click()
    page.get_by_role("heading", name="Pay to confirm your lesson").wait_for()
    pay_in_sandbox(page, "10 lessons (6 months)")
    page.goto("/app")
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Upcoming lessons"))
    upcoming.get_by_text("Kiran").wait_for()
    assert page.get_by_text("9 lesson credits available").count()  # the family wallet
    check_page(page, "dashboard-parent")


def test_main_pages_at_phone_width(pages, server: Server) -> None:
    assert "booking_path" in server.shared
    page = pages.open(phone=True)
    for path, name in [("/", "landing"), ("/tutors", "directory"),
                       (server.shared["tutor_path"], "tutor-profile"),
                       ("/app/login", "login"), ("/app/signup", "signup"), ("/offline", "offline")]:
        page.goto(path)
        check_page(page, name)
    sign_in(page, server.shared["student_email"])
    for path, name in [("/app", "dashboard-student"), (server.shared["booking_path"], "booking"),
                       (server.shared["booking_path"] + "/cancel", "cancel"),
                       ("/app/account", "account")]:
        page.goto(path)
        check_page(page, name)
    # touch targets: every button and button-like link in the page body is 44px tall
    page.goto(server.shared["tutor_path"])
    small = page.evaluate("""[...document.querySelectorAll('main .button, main button, main .slot')]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.textContent.trim().slice(0, 30), e.getBoundingClientRect().height])
        .filter(([, h]) => h < 44)""")
    assert small == []
    # the tutor's and the admin's pages too
    tutor = pages.open(phone=True)
    sign_in(tutor, server.shared["tutor_email"])
    for path, name in [("/app", "dashboard-tutor"), ("/app/profile", "profile-editor"),
                       ("/app/availability", "availability"), ("/app/calendar", "calendar")]:
        tutor.goto(path)
        check_page(tutor, name)
    admin = pages.open(phone=True)
    sign_in(admin, ADMIN_EMAIL, totp=server.admin_totp)
    for path, name in [("/admin", "admin-overview"), ("/admin/tutors?status=approved", "admin-tutors"),
                       ("/admin/bookings", "admin-bookings")]:
        admin.goto(path)
        check_page(admin, name)


def test_installable_pwa_works_offline_and_the_first_page_is_light(pages, server: Server) -> None:
    page = pages.open(phone=True)
    page.goto("/")
    weight = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource').filter(r => r.initiatorType !== 'img');
        return nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0); }""")
    assert weight < 200_000, f"the landing page weighs {weight} bytes without images"
    page.set_viewport_size({"width": 360, "height": 740})  # the narrowest phones we support
    for path in ("/", "/tutors", server.shared["tutor_path"], "/app/signup"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways at 360 px by {overflow}px"
    page.goto("/")
    manifest = page.request.get("/manifest.webmanifest").json()
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/app"
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == server.url + "/"
    page.reload()  # now controlled by the worker, which cached the shell
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.context.set_offline(True)
    page.goto("/tutors?never-visited=1")
    page.get_by_role("heading", name="You are offline").wait_for()
    page.context.set_offline(False)


def test_keyboard_only_search_and_visible_focus(pages, server: Server) -> None:
    page = pages.open()
    for path, name in [("/app/login", "login"), ("/app/signup", "signup"),
                       ("/app/login/code", "login-code"), ("/app/reset", "reset"),
                       ("/offline", "offline")]:
        page.goto(path)
        check_page(page, name)
    page.goto("/tutors")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    page.focus("#f-q")
    page.keyboard.type("algebra")
    page.keyboard.press("Enter")
    page.locator("#results").get_by_role("link", name="Tomás Tutor", exact=True).wait_for()
    page.locator("#results").get_by_role("link", name="Tomás Tutor", exact=True).focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Tomás Tutor").wait_for()
