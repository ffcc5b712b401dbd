"""The HTML forms, with field-level errors in plain words."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import EqualTo, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from recommender.cry_sessions import REACTIONS
from recommender.vocabulary import default_vocabulary


class SignUpForm(FlaskForm):
    username = StringField("Username", validators=[
        InputRequired("Choose a username."),
        Length(3, 64, "A username has 3 to 64 characters.")])
    password = PasswordField("Password", validators=[
        InputRequired("Choose a password."),
        Length(8, 1024, "A password needs at least 8 characters.")])
    confirm = PasswordField("Password again", validators=[
        EqualTo("password", "The two passwords are not the same.")])


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired("Enter your username.")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password.")])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def mood_choices() -> list[tuple[str, str]]:
    return [(m.id, m.label) for m in default_vocabulary().moods]


class SessionRequestForm(FlaskForm):
    moods = MultiCheckboxField("How do you feel?", choices=mood_choices,
                               validate_choice=True)
    prompt = TextAreaField("What is on your mind? (optional)", validators=[
        Optional(), Length(max=2000, message="Please keep it under 2,000 characters.")])
    minutes = IntegerField("Minutes you have", default=45, validators=[
        InputRequired("Say how many minutes you have."),
        NumberRange(5, 240, "Choose between 5 and 240 minutes.")])
    intensity = RadioField("Intensity", default="3", choices=[
        ("1", "1 gentle"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5 devastating")])
    include_films = BooleanField("Films are fine", default=True)
    exploration = RadioField("Familiar or new?", default="balanced", choices=[
        ("familiar", "What has worked before"), ("balanced", "A mix"),
        ("discover", "Something new")])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not self.moods.data and not (self.prompt.data or "").strip():
            self.moods.errors = [*self.moods.errors,
                                 "Pick a mood, or write a few words, or both."]
            ok = False
        return ok


class MemoryForm(FlaskForm):
    title = StringField("A name for this memory", validators=[
        InputRequired("Give the memory a short name."), Length(1, 200)])
    text = TextAreaField("What happened, who was there", validators=[
        Optional(), Length(max=20000)])
    people = StringField("People (comma separated)", validators=[Optional(), Length(max=500)])
    places = StringField("Places (comma separated)", validators=[Optional(), Length(max=500)])
    tags = StringField("Tags (comma separated)", validators=[Optional(), Length(max=500)])
    when = StringField("When", validators=[Optional(), Length(max=200)])


def feedback_form_class(item_ids: list[str]) -> type[FlaskForm]:
    """A rating form with one reaction field per session item."""

    class FeedbackForm(FlaskForm):
        catharsis = RadioField("How much did it release?", validators=[Optional()],
                               choices=[(str(i), str(i)) for i in range(1, 6)])
        mood_before = IntegerField("Mood before (1-10)", validators=[
            Optional(), NumberRange(1, 10, "Use a number from 1 to 10.")])
        mood_after = IntegerField("Mood after (1-10)", validators=[
            Optional(), NumberRange(1, 10, "Use a number from 1 to 10.")])
        note = TextAreaField("A note for yourself (private)", validators=[
            Optional(), Length(max=10000)])

    labels = {"cried": "Cried", "moved": "Moved", "neutral": "Neutral", "skipped": "Skipped",
              "never_again": "Never again"}
    for item_id in item_ids:
        setattr(FeedbackForm, f"r_{item_id}", RadioField(
            "Reaction", validators=[Optional()],
            choices=[(r, labels[r]) for r in REACTIONS]))
    return FeedbackForm
