"""The HTML forms, with field-level errors in plain words."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from recommender.accounts import MIN_PASSWORD
from recommender.cry_sessions import REACTIONS
from recommender.vocabulary import default_vocabulary

MINUTES = (5, 240)
REACTION_LABELS = {"cried": "Cried", "moved": "Moved", "neutral": "Neutral",
                   "skipped": "Skipped", "never_again": "Never again"}
CATHARSIS_LABELS = {1: "a little", 3: "some", 5: "a lot"}


class SignUpForm(FlaskForm):
    username = StringField("Username", validators=[
        InputRequired("Choose a username."),
        Length(3, 64, "A username has 3 to 64 characters.")])
    password = PasswordField("Password", validators=[
        InputRequired("Choose a password."),
        Length(MIN_PASSWORD, 1024, f"A password needs at least {MIN_PASSWORD} characters.")])
    confirm = PasswordField("Password again", validators=[
        InputRequired("Type the password a second time."),
        EqualTo("password", "The two passwords are not the same.")])

    def validate_username(self, field) -> None:
        if any(c.isspace() for c in (field.data or "").strip()):
            raise ValidationError("A username cannot contain spaces.")


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired("Enter your username.")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password.")])


class DeleteAccountForm(FlaskForm):
    password = PasswordField("Your password, to confirm", validators=[
        InputRequired("Enter your password to confirm.")])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def mood_choices() -> list[SelectChoice]:
    return [SelectChoice(m.id, m.label) for m in default_vocabulary().moods]


class SessionRequestForm(FlaskForm):
    moods = MultiCheckboxField(
        "How do you feel?", choices=mood_choices, validate_choice=True,
        invalid_choice_message="We do not know that mood; pick one of these.")
    prompt = TextAreaField("In a few words, what is on your mind?", validators=[
        Optional(), Length(max=2000, message="Please keep it under 2,000 characters.")])
    minutes = IntegerField(
        "Minutes you have", default=45,
        invalid_value_message="Write the minutes as a whole number, like 45.",
        validators=[InputRequired("Say how many minutes you have."),
                    NumberRange(*MINUTES, f"Choose between {MINUTES[0]} and {MINUTES[1]} "
                                          "minutes.")])
    intensity = RadioField(
        "How deep should it go?", default="3",
        invalid_choice_message="Pick a depth from 1 to 5.",
        choices=[SelectChoice("1", "1 · gentle"), SelectChoice("2", "2"),
                 SelectChoice("3", "3"), SelectChoice("4", "4"),
                 SelectChoice("5", "5 · devastating")])
    include_films = RadioField(
        "Films too?", default="yes", invalid_choice_message="Say yes or no to films.",
        choices=[SelectChoice("yes", "Yes, films are fine"), SelectChoice("no", "Songs only")])
    exploration = RadioField(
        "Familiar or new?", default="balanced", invalid_choice_message="Pick one of these.",
        choices=[SelectChoice("familiar", "What has worked before"),
                 SelectChoice("balanced", "A mix"), SelectChoice("discover", "Something new")])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not self.moods.data and not (self.prompt.data or "").strip():
            self.moods.errors = [*self.moods.errors,
                                 "Pick a feeling, or write a few words below, or both."]
            ok = False
        return ok


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _list_length(form, field) -> None:
    if any(len(part) > 100 for part in _split(field.data)):
        raise ValidationError("Keep each entry under 100 characters; separate them with commas.")


class MemoryForm(FlaskForm):
    title = StringField("A short name for this memory", validators=[
        InputRequired("Give the memory a short name, like “Dad's workshop”."),
        Length(1, 200, "Keep the name under 200 characters.")])
    text = TextAreaField("What happened, who was there", validators=[
        Optional(), Length(max=20000, message="Please keep it under 20,000 characters.")])
    people = StringField("People", validators=[
        Optional(), Length(max=500, message="Keep this under 500 characters."), _list_length])
    places = StringField("Places", validators=[
        Optional(), Length(max=500, message="Keep this under 500 characters."), _list_length])
    tags = StringField("Tags", validators=[
        Optional(), Length(max=500, message="Keep this under 500 characters."), _list_length])
    when = StringField("When", validators=[
        Optional(), Length(max=200, message="Keep this under 200 characters.")])

    def fields_document(self) -> dict:
        """The memory's fields as ``recommender.memories`` takes them."""
        return {"title": self.title.data, "text": self.text.data or "",
                "people": _split(self.people.data), "places": _split(self.places.data),
                "tags": _split(self.tags.data), "when": self.when.data or None}


def _scale(low: int, high: int, labels: dict[int, str]) -> list[SelectChoice]:
    return [SelectChoice(str(i), f"{i} · {labels[i]}" if i in labels else str(i))
            for i in range(low, high + 1)]


def feedback_form_class(item_ids: list[str]) -> type[FlaskForm]:
    """A rating form with one reaction field per session item."""

    class FeedbackForm(FlaskForm):
        catharsis = RadioField(
            "How much did it release?", validators=[Optional()],
            invalid_choice_message="Pick a number from 1 to 5.",
            choices=_scale(1, 5, CATHARSIS_LABELS))
        mood_before = RadioField(
            "Your mood before, from 1 (very low) to 10 (very good)", validators=[Optional()],
            invalid_choice_message="Pick a number from 1 to 10.", choices=_scale(1, 10, {}))
        mood_after = RadioField(
            "Your mood now, from 1 (very low) to 10 (very good)", validators=[Optional()],
            invalid_choice_message="Pick a number from 1 to 10.", choices=_scale(1, 10, {}))
        note = TextAreaField("A note for yourself", validators=[
            Optional(), Length(max=10000, message="Please keep it under 10,000 characters.")])

    for item_id in item_ids:
        setattr(FeedbackForm, f"r_{item_id}", RadioField(
            "Reaction", validators=[Optional()],
            invalid_choice_message="Pick one of these, or leave it empty.",
            choices=[SelectChoice(r, REACTION_LABELS[r]) for r in REACTIONS]))
    return FeedbackForm
